package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/reports/api"
	"github.com/otpprobe/otpprobe/reports/failover"
	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
)

const (
	readToken  = "read-0123456789abcdef"
	adminToken = "admin-0123456789abcdef"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newAuthServer serves the API behind Auth with a read and an admin token
// (from a file and from the environment) and the extra http: settings.
func newAuthServer(t *testing.T, extra string) (*httptest.Server, *syncBuffer) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "admin.token"), []byte(adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OTPPROBE_TEST_READ_TOKEN", readToken)
	cfg, err := targets.Parse([]byte(config+`
http:
  tokens:
    - {name: dashboards, token_env: OTPPROBE_TEST_READ_TOKEN, scope: read}
    - {name: oncall, token_file: admin.token, scope: admin}
`+extra), dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(dir, "otpprobe.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	f, err := failover.New(ctx, cfg, failover.Options{Store: st, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux, api.Options{Routes: f, Transitions: st, Logger: logger})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("otpprobe_up 1\n")) })
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>dashboard</html>")) })
	srv := httptest.NewServer(api.NewAuth(cfg.HTTP, logger).Wrap(mux))
	t.Cleanup(srv.Close)
	return srv, &logs
}

func bearer(token string) []string { return []string{"Authorization", "Bearer " + token} }

func TestAuthRefusesWithoutToken(t *testing.T) {
	srv, logs := newAuthServer(t, "")
	pin := srv.URL + "/api/v1/routes/otp/pin"
	body := `{"sender": "backup", "reason": "body-marker-xyz"}`
	for name, h := range map[string][]string{
		"no header":      nil,
		"unknown token":  bearer("wrong-0123456789abcdef"),
		"empty bearer":   {"Authorization", "Bearer "},
		"another scheme": {"Authorization", "Digest " + adminToken},
	} {
		resp, got := do(t, "POST", pin, "application/json", body, h...)
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Bearer realm="otpprobe"`) {
			t.Errorf("%s: %d %q %s", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), got)
		}
	}
	resp, _ := do(t, "POST", pin, "application/json", body, bearer("wrong-0123456789abcdef")...)
	if !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("a wrong token's challenge: %q", resp.Header.Get("WWW-Authenticate"))
	}
	for _, path := range []string{"/api/v1/routes", "/api/v1/routes/otp", "/api/v1/routes/otp/transitions", "/api/v1/nothing-here"} {
		if resp, _ := do(t, "GET", srv.URL+path, "", ""); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %d", path, resp.StatusCode)
		}
	}
	// A read token may look but not pin.
	if resp, got := do(t, "GET", srv.URL+"/api/v1/routes/otp", "", "", bearer(readToken)...); resp.StatusCode != 200 {
		t.Errorf("GET with the read token: %d %s", resp.StatusCode, got)
	}
	resp, got := do(t, "POST", pin, "application/json", body, bearer(readToken)...)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Errorf("pin with the read token: %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), got)
	}
	if resp, _ := do(t, "POST", srv.URL+"/api/v1/routes/otp/unpin", "application/json", "", bearer(readToken)...); resp.StatusCode != http.StatusForbidden {
		t.Errorf("unpin with the read token: %d", resp.StatusCode)
	}
	resp, _ = do(t, "GET", srv.URL+"/api/v1/routes/otp", "", "", bearer(adminToken)...)
	var d failover.Decision
	if resp.StatusCode != 200 {
		t.Fatalf("GET with the admin token: %d", resp.StatusCode)
	}
	// Nothing refused changed the route, and the logs name the refusals
	// without the tokens or the bodies.
	out := logs.String()
	if !strings.Contains(out, "request refused") || !strings.Contains(out, "has scope read") {
		t.Errorf("refusals not logged:\n%s", out)
	}
	for _, secret := range []string{adminToken, readToken, "wrong-0123456789abcdef", "body-marker-xyz"} {
		if strings.Contains(out, secret) {
			t.Errorf("the logs hold %q:\n%s", secret, out)
		}
	}
	_, got = do(t, "GET", srv.URL+"/api/v1/routes/otp", "", "", bearer(readToken)...)
	if err := json.Unmarshal([]byte(got), &d); err != nil || d.Pinned {
		t.Errorf("after refused pins: %s %v", got, err)
	}
}

func TestAuthAdminPinIsAudited(t *testing.T) {
	srv, logs := newAuthServer(t, "")
	resp, got := do(t, "POST", srv.URL+"/api/v1/routes/otp/pin", "application/json", `{"sender": "backup", "reason": "tenant maintenance"}`, bearer(adminToken)...)
	if resp.StatusCode != 200 {
		t.Fatalf("pin with the admin token: %d %s", resp.StatusCode, got)
	}
	var d failover.Decision
	if err := json.Unmarshal([]byte(got), &d); err != nil || !d.Pinned || d.ActiveSender != "backup" || !strings.Contains(d.Reason, "by oncall: tenant maintenance") {
		t.Errorf("pinned decision %s %v", got, err)
	}
	resp, got = do(t, "POST", srv.URL+"/api/v1/routes/otp/unpin", "application/json", `{"reason": "done"}`, bearer(adminToken)...)
	if resp.StatusCode != 200 {
		t.Fatalf("unpin: %d %s", resp.StatusCode, got)
	}
	_, got = do(t, "GET", srv.URL+"/api/v1/routes/otp/transitions", "", "", bearer(readToken)...)
	var trs []api.Transition
	if err := json.Unmarshal([]byte(got), &trs); err != nil || len(trs) != 2 {
		t.Fatalf("transitions %s %v", got, err)
	}
	if trs[0].ToState != "pinned" || trs[0].By != "oncall" || trs[0].Source != "127.0.0.1" ||
		trs[1].FromState != "pinned" || trs[1].By != "oncall" || !strings.Contains(trs[1].Reason, "unpinned (done)") {
		t.Errorf("transitions without their audit: %s", got)
	}
	if out := logs.String(); !strings.Contains(out, `msg="route pinned" route=otp sender=backup by=oncall source=127.0.0.1 reason="tenant maintenance"`) ||
		strings.Contains(out, adminToken) {
		t.Errorf("pin log:\n%s", out)
	}
}

func TestAuthMetricsAndDashboard(t *testing.T) {
	srv, _ := newAuthServer(t, "")
	if resp, _ := do(t, "GET", srv.URL+"/metrics", "", ""); resp.StatusCode != 200 {
		t.Errorf("/metrics is open by default: %d", resp.StatusCode)
	}
	// The dashboard asks a browser for the token through Basic.
	resp, _ := do(t, "GET", srv.URL+"/", "", "")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `Basic realm="otpprobe"`) {
		t.Errorf("dashboard without a token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("me:"+readToken))
	if resp, got := do(t, "GET", srv.URL+"/", "", "", "Authorization", basic); resp.StatusCode != 200 || !strings.Contains(got, "dashboard") {
		t.Errorf("dashboard with the read token as a Basic password: %d %s", resp.StatusCode, got)
	}

	srv, _ = newAuthServer(t, "  metrics_auth: read\n")
	if resp, _ := do(t, "GET", srv.URL+"/metrics", "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics with metrics_auth: read and no token: %d", resp.StatusCode)
	}
	if resp, _ := do(t, "GET", srv.URL+"/metrics", "", "", bearer(readToken)...); resp.StatusCode != 200 {
		t.Errorf("/metrics with the read token: %d", resp.StatusCode)
	}
}

func TestAuthOpenWithoutTokens(t *testing.T) {
	cfg, err := targets.Parse([]byte(config), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "otpprobe.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f, err := failover.New(ctx, cfg, failover.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux, api.Options{Routes: f, Transitions: st})
	auth := api.NewAuth(cfg.HTTP, nil)
	srv := httptest.NewServer(auth.Wrap(mux))
	defer srv.Close()
	if resp, got := do(t, "POST", srv.URL+"/api/v1/routes/otp/pin", "application/json", `{"sender": "backup"}`); resp.StatusCode != 200 {
		t.Fatalf("pin without tokens configured: %d %s", resp.StatusCode, got)
	}
	trs, _ := st.Transitions(ctx, "otp", time.Time{}, 0)
	if len(trs) != 1 || trs[0].Actor != api.Anonymous || trs[0].Source != "127.0.0.1" {
		t.Errorf("anonymous pin recorded as %+v", trs)
	}
}
