package probe

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/targets"
)

type staticToken string

func (s staticToken) Token(context.Context) (string, error) { return string(s), nil }

type failingToken struct{ err error }

func (f failingToken) Token(context.Context) (string, error) { return "", f.err }

const graphTestToken = "eyJ.graph-test-token.SECRET"

// graphTestServer is a loopback HTTPS server answering sendMail with
// status (and Retry-After when set); it records what it got.
func graphTestServer(t *testing.T, status int, retryAfter string) (*httptest.Server, *[]string, targets.Sender) {
	t.Helper()
	var got []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = append(got, r.Method+" "+r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(body))
		w.Header().Set("request-id", "req-1")
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		if status != http.StatusAccepted {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":{"code":"Code%d","message":"says %d"}}`, status, status)
			return
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := targets.Sender{Name: "m365", Type: targets.SenderGraph, GraphURL: srv.URL, User: "otp@example.com",
		Endpoint: targets.Endpoint{CAFile: ca},
		Auth:     targets.Auth{OAuth2: &targets.OAuth2{Provider: targets.OAuth2Microsoft}}}
	return srv, &got, cfg
}

func TestGraphSenderSubmits(t *testing.T) {
	_, got, cfg := graphTestServer(t, http.StatusAccepted, "")
	g, err := NewGraphSender(cfg, staticToken(graphTestToken))
	if err != nil {
		t.Fatal(err)
	}
	msg := testCanary()
	before := time.Now().Truncate(time.Millisecond)
	res, err := g.Send(context.Background(), "ignored@example.com", []string{"seed@gmail.example"}, msg)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	r := *got
	if r[0] != "POST /v1.0/users/otp@example.com/sendMail" || r[1] != "Bearer "+graphTestToken || r[2] != "text/plain" {
		t.Errorf("request %q", r[:3])
	}
	if dec, err := base64.StdEncoding.DecodeString(r[3]); err != nil || string(dec) != string(msg) {
		t.Errorf("body is not the base64 MIME message: %v", err)
	}
	if res.SubmittedAt.Before(before) || res.QueueID != "req-1" || !strings.HasPrefix(res.Reply, "202 ") {
		t.Errorf("result %+v", res)
	}
	assertNoSecret(t, graphTestToken, res.Transcript, fmt.Sprintf("%+v", res))
}

func TestGraphSenderErrors(t *testing.T) {
	for _, tc := range []struct {
		status     int
		retryAfter string
		temporary  bool
		want       string
	}{
		{http.StatusTooManyRequests, "7", true, "graph submit: sendMail: HTTP 429 Code429: says 429 (Retry-After 7s)"},
		{http.StatusUnauthorized, "", false, "graph submit: sendMail: HTTP 401 Code401: says 401"},
		{http.StatusForbidden, "", false, "graph submit: sendMail: HTTP 403 Code403: says 403"},
		{http.StatusServiceUnavailable, "3", true, "graph submit: sendMail: HTTP 503 Code503: says 503 (Retry-After 3s)"},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			_, _, cfg := graphTestServer(t, tc.status, tc.retryAfter)
			g, err := NewGraphSender(cfg, staticToken(graphTestToken))
			if err != nil {
				t.Fatal(err)
			}
			_, err = g.Send(context.Background(), "", nil, testCanary())
			var se *SendError
			if !errors.As(err, &se) || se.Stage != StageSubmit || se.Code != tc.status || se.Temporary != tc.temporary || se.Error() != tc.want {
				t.Fatalf("err %v (%+v), want %q temporary %v", err, se, tc.want, tc.temporary)
			}
			var ge *GraphError
			if errors.As(err, &ge) && tc.retryAfter != "" && ge.RetryAfter == 0 {
				t.Error("Retry-After not kept")
			}
			assertNoSecret(t, graphTestToken, se.Error(), se.Transcript)
		})
	}
	t.Run("no token", func(t *testing.T) {
		_, got, cfg := graphTestServer(t, http.StatusAccepted, "")
		g, _ := NewGraphSender(cfg, failingToken{errors.New("token endpoint refused: invalid_client")})
		_, err := g.Send(context.Background(), "", nil, testCanary())
		var se *SendError
		if !errors.As(err, &se) || se.Stage != StageToken || len(*got) != 0 {
			t.Fatalf("err %v; requests %d", err, len(*got))
		}
	})
}
