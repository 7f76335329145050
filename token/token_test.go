package token_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/lab/identity"
	"github.com/otpprobe/otpprobe/targets"
	"github.com/otpprobe/otpprobe/token"
)

const (
	tenant   = "contoso-test"
	appID    = "app-1"
	publicID = "public-1"
	secret   = "app-secret-Zx9-never-printed"
	user     = "seed@outlook.test"
)

// idp starts the lab's identity platform on loopback with an app (client
// secret) and a public client for user; it returns it and the CA file.
func idp(t *testing.T) (*identity.Server, string) {
	t.Helper()
	ca, err := lab.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := ca.ServerTLS("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	s, err := identity.Start(identity.Config{Addr: "127.0.0.1:0", Host: "127.0.0.1", TLS: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.RegisterApp(identity.App{Tenant: tenant, ClientID: appID, Secret: secret})
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return s, caFile
}

func TestClientCredentialsCachedAndShared(t *testing.T) {
	s, caFile := idp(t)
	o := &targets.OAuth2{Provider: targets.OAuth2Microsoft, Flow: targets.FlowClientCredentials, Tenant: tenant,
		ClientID: appID, ClientSecret: targets.Secret(secret), Authority: s.Authority(), CAFile: caFile}
	var srcs token.Sources
	a, err := srcs.For(o, false)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := srcs.For(o, false) // the IMAP path of the same account
	if a != b {
		t.Fatal("two sources for one account")
	}
	t1, err := a.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t2, err := b.Token(context.Background())
	if err != nil || t2 != t1 {
		t.Fatalf("second token %v: want the cached one", err)
	}
	if n := len(s.Issued()); n != 1 {
		t.Errorf("%d tokens issued, want 1 (cached)", n)
	}
	if _, err := s.Verify(t1, identity.AudienceOutlook, identity.RoleSMTPSend); err != nil {
		t.Errorf("token does not verify for SMTP: %v", err)
	}
	g, _ := srcs.For(o, true)
	if g == a {
		t.Fatal("Graph shares the Outlook source: another audience needs another token")
	}
	gt, err := g.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(gt, identity.AudienceGraph, identity.RoleMailSend); err != nil {
		t.Errorf("graph token: %v", err)
	}

	s.SetFaults(identity.Faults{SecretExpired: true})
	o2 := *o
	o2.ClientSecret = "another-secret-value"
	c, _ := srcs.For(&o2, false)
	_, err = c.Token(context.Background())
	var te *token.Error
	if !errors.As(err, &te) || te.Code != "invalid_client" || !strings.Contains(err.Error(), "AADSTS7000222") ||
		!strings.Contains(err.Error(), "create a new secret") || strings.Contains(err.Error(), "another-secret-value") {
		t.Fatalf("err = %v", err)
	}
}

func TestRefreshTokenRotation(t *testing.T) {
	s, caFile := idp(t)
	rt := s.IssueRefreshToken(identity.User{Tenant: "consumers", ClientID: publicID, Address: user})
	file := filepath.Join(t.TempDir(), "outlook.refresh")
	if err := os.WriteFile(file, []byte(rt+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := &targets.OAuth2{Provider: targets.OAuth2Microsoft, Flow: targets.FlowRefreshToken, Tenant: "consumers",
		ClientID: publicID, RefreshTokenFile: file, Authority: s.Authority(), CAFile: caFile}
	src, err := token.New(o, o.ScopesFor(false))
	if err != nil {
		t.Fatal(err)
	}
	at, err := src.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Verify(at, identity.AudienceOutlook, identity.ScopeIMAPUser)
	if err != nil || c.UPN != user {
		t.Fatalf("access token: %v %+v", err, c)
	}
	data, _ := os.ReadFile(file)
	st, _ := os.Stat(file)
	if got := strings.TrimSpace(string(data)); got == rt || got == "" || st.Mode().Perm() != 0o600 {
		t.Fatalf("refresh token file after rotation: changed=%v mode %v", got != rt, st.Mode().Perm())
	}
	if again, _ := src.Token(context.Background()); again != at {
		t.Error("a fresh access token was not served from the cache")
	}
	// A new source reads the rotated one from the file.
	src2, _ := token.New(o, o.ScopesFor(false))
	if _, err := src2.Token(context.Background()); err != nil {
		t.Fatalf("the rotated refresh token does not work: %v", err)
	}

	s.SetFaults(identity.Faults{RefreshRevoked: true})
	src3, _ := token.New(o, o.ScopesFor(false))
	_, err = src3.Token(context.Background())
	var te *token.Error
	if !errors.As(err, &te) || te.Code != "invalid_grant" || !strings.Contains(err.Error(), "otpprobe auth login") {
		t.Fatalf("revoked: %v", err)
	}
	cur, _ := os.ReadFile(file)
	if strings.Contains(err.Error(), strings.TrimSpace(string(cur))) {
		t.Error("the refresh token is in the error")
	}
}

func TestWriteSecretFileAtomic(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rt")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := token.WriteSecretFile(p, "new"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	if string(data) != "new\n" || st.Mode().Perm() != 0o600 {
		t.Fatalf("%q %v", data, st.Mode().Perm())
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
