package token_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/lab/identity"
	"github.com/otpprobe/otpprobe/targets"
	"github.com/otpprobe/otpprobe/token"
)

func publicAccount(s *identity.Server, caFile string, t *testing.T) *targets.OAuth2 {
	return &targets.OAuth2{Provider: targets.OAuth2Microsoft, Flow: targets.FlowRefreshToken, Tenant: "consumers",
		ClientID: publicID, RefreshTokenFile: filepath.Join(t.TempDir(), "rt"), Authority: s.Authority(), CAFile: caFile}
}

// TestDeviceLogin: the device-code flow polls while nobody approved the
// code (authorization_pending), stores the refresh token once the person
// did, and gives up with a clear error when nobody does in time.
func TestDeviceLogin(t *testing.T) {
	s, caFile := idp(t)
	o := publicAccount(s, caFile, t)
	approved := make(chan error, 1)
	l := &token.Login{OAuth2: o, Scopes: o.ScopesFor(false), User: user, Show: func(in token.Instructions) {
		if !strings.HasSuffix(in.URL, "/devicelogin") || in.Code == "" || in.Expires.IsZero() {
			t.Errorf("instructions %+v", in)
		}
		go func() {
			// The person approves after the client polled in vain.
			deadline := time.Now().Add(30 * time.Second)
			for s.PendingPolls(in.Code) == 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			approved <- s.ApproveDevice(in.Code, "")
		}()
	}}
	res, err := l.Device(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := <-approved; err != nil {
		t.Fatal(err)
	}
	rt, _ := os.ReadFile(res.File)
	st, _ := os.Stat(res.File)
	if !strings.HasPrefix(string(rt), "lab-rt-") || st.Mode().Perm() != 0o600 {
		t.Fatalf("stored %q mode %v", rt, st.Mode().Perm())
	}
	src, _ := token.New(o, o.ScopesFor(false))
	at, err := src.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c, err := s.Verify(at, identity.AudienceOutlook, identity.ScopeIMAPUser); err != nil || c.UPN != user {
		t.Fatalf("token from the stored refresh token: %v %+v", err, c)
	}

	ctx, cancel := context.WithCancel(context.Background())
	nobody := &token.Login{OAuth2: publicAccount(s, caFile, t), Scopes: o.ScopesFor(false), User: user,
		Show: func(token.Instructions) { cancel() }}
	if _, err := nobody.Device(ctx); err == nil || !strings.Contains(err.Error(), "nobody signed in") {
		t.Fatalf("unapproved: %v", err)
	}
}

// TestLoopbackLogin: a refused sign-in comes back to the listener as an
// error and is reported; an accepted one brings the code, redeemed with
// the PKCE verifier the lab checks against the challenge.
func TestLoopbackLogin(t *testing.T) {
	s, caFile := idp(t)
	o := publicAccount(s, caFile, t)
	pool := x509.NewCertPool()
	if ca, err := os.ReadFile(caFile); err != nil || !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("CA: %v", err)
	}
	browser := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	visit := func(in token.Instructions) {
		go func() {
			resp, err := browser.Get(in.URL)
			if err != nil {
				t.Errorf("browser: %v", err)
				return
			}
			resp.Body.Close()
		}()
	}
	// No login_hint: the lab's person cannot sign in (login_required).
	l := &token.Login{OAuth2: o, Scopes: o.ScopesFor(false), Show: visit}
	if _, err := l.Loopback(context.Background(), "127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), "login_required") {
		t.Fatalf("without an account: %v", err)
	}
	l.User = user
	res, err := l.Loopback(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if rt, _ := os.ReadFile(res.File); !strings.HasPrefix(string(rt), "lab-rt-") {
		t.Fatal("no refresh token stored")
	}
}
