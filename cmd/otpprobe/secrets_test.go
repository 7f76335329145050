package main

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otpprobe/otpprobe/lab"
)

// TestNoSecretInOutput runs the prober against the lab with every way the
// m365 sender logs in (password, XOAUTH2 with a client secret or a
// certificate, Graph), healthy and with the token endpoint refusing, and
// greps everything it produced — logs, the once report with transcripts
// and errors, the store's files, validate's output — for every password,
// the app's client secret, the outlook seed's refresh token and every
// access and refresh token the lab's identity platform issued.
func TestNoSecretInOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the prober against the lab twelve times")
	}
	ctx := context.Background()
	w, err := lab.Start(ctx, lab.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ep := w.Endpoints()

	var produced []string
	for _, scenario := range []string{lab.Healthy, "oauth-secret-expired", "oauth-refresh-revoked"} {
		if err := w.Apply(lab.Healthy); err != nil {
			t.Fatal(err)
		}
		if err := w.Apply(scenario); err != nil {
			t.Fatal(err)
		}
		for _, mode := range lab.M365Modes {
			dir := t.TempDir()
			cfg, err := ep.WriteConfig(lab.ConfigOptions{Dir: dir, M365: mode, Listen: "127.0.0.1:0"})
			if err != nil {
				t.Fatal(err)
			}
			_, out, errOut := run(t, ctx, "once", "--config", cfg, "--format", "json", "-v", "--deadline", "3s")
			if !strings.Contains(out, `"attempts"`) {
				t.Fatalf("%s/%s: once printed no report:\n%s\n%s", scenario, mode, out, errOut)
			}
			_, vout, verr := run(t, ctx, "validate", "--config", cfg)
			produced = append(produced, out, errOut, vout, verr)
			files, _ := filepath.Glob(filepath.Join(dir, "otpprobe.db*"))
			if len(files) == 0 {
				t.Fatalf("%s/%s: no store files in %s", scenario, mode, dir)
			}
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				produced = append(produced, string(data))
			}
		}
	}

	secrets := map[string]string{}
	for _, e := range append(append(ep.Senders, ep.Mailboxes...), *ep.Bounces) {
		secrets[e.Name+" password"] = e.Password
		if e.OAuth2 != nil && e.OAuth2.ClientSecret != "" {
			secrets[e.Name+" client secret"] = e.OAuth2.ClientSecret
		}
		if e.OAuth2 != nil && e.OAuth2.RefreshToken != "" {
			secrets[e.Name+" refresh token"] = e.OAuth2.RefreshToken
		}
	}
	issued := w.Identity().Issued()
	if len(issued) < 5 { // secret, certificate, Graph, the outlook seed's access and rotated refresh tokens (token.Shared caches across runs)
		t.Fatalf("the lab issued %d tokens: the OAuth2 paths did not run", len(issued))
	}
	for i, tok := range issued {
		secrets["issued token "+string(rune('a'+i%26))] = tok
	}
	all := strings.Join(produced, "\n")
	for what, s := range secrets {
		if s == "" {
			t.Fatalf("%s is empty", what)
		}
		for _, form := range []string{s, base64.StdEncoding.EncodeToString([]byte(s))} {
			if strings.Contains(all, form) {
				t.Errorf("%s appears in the prober's output", what)
			}
		}
	}
	// Tokens are JWTs: their signature part alone must not leak either.
	for _, tok := range issued {
		if parts := strings.Split(tok, "."); len(parts) == 3 && strings.Contains(all, parts[2]) {
			t.Error("an issued token's signature appears in the prober's output")
		}
	}
}
