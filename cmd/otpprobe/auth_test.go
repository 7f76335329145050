package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otpprobe/otpprobe/lab"
)

// labAuth starts a lab world and writes its config (m365 logging in as
// mode) into a fresh directory; it returns the world, the config and the
// directory.
func labAuth(t *testing.T, mode string) (*lab.World, string, string) {
	t.Helper()
	w, err := lab.Start(context.Background(), lab.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	dir := t.TempDir()
	cfg, err := w.Endpoints().WriteConfig(lab.ConfigOptions{Dir: dir, M365: mode, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	return w, cfg, dir
}

// labBrowser is the person's browser: it trusts the lab CA and follows
// redirects (to the loopback listener of auth login, too).
func labBrowser(t *testing.T, w *lab.World) *http.Client {
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(w.Endpoints().CAFile)
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("lab CA: %v", err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// authLogin runs `auth login` with args; each line it prints goes to
// onLine (which plays the person) until it exits.
func authLogin(t *testing.T, onLine func(string), args ...string) (int, string, string) {
	t.Helper()
	pr, pw := io.Pipe()
	var stderr strings.Builder
	done := make(chan int, 1)
	go func() {
		code := dispatch(context.Background(), append([]string{"auth", "login"}, args...), pw, &stderr)
		pw.Close()
		done <- code
	}()
	var out strings.Builder
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		onLine(sc.Text())
	}
	return <-done, out.String(), stderr.String()
}

// TestAuthLoginDeviceCode: the outlook seed has no refresh token yet, so
// auth test fails naming auth login; auth login prints the verification
// URL and code, the test plays the person and approves the code at the
// lab identity platform's /devicelogin, and the refresh token lands in
// refresh_token_file (0600); auth test then logs in over IMAP with it.
func TestAuthLoginDeviceCode(t *testing.T) {
	w, cfg, dir := labAuth(t, lab.M365OAuth2)
	rtFile := filepath.Join(dir, "mailbox-outlook-refresh-token.password")
	if err := os.Remove(rtFile); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	code, out, errOut := run(t, ctx, "auth", "test", "--config", cfg, "--mailbox", lab.ProviderOutlook)
	if code != exitFailed || !strings.Contains(out, "FAIL token") || !strings.Contains(out, "run otpprobe auth login") {
		t.Fatalf("auth test without a refresh token: exit %d\n%s%s", code, out, errOut)
	}

	browser := labBrowser(t, w)
	var verifyURL, userCode string
	approved := 0
	code, out, errOut = authLogin(t, func(line string) {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "open":
			verifyURL = f[1]
		case len(f) == 2 && f[0] == "enter":
			userCode = f[1]
			// The person signs in: before that, auth login is polling.
			resp, err := browser.PostForm(verifyURL, url.Values{"user_code": {userCode}})
			if err != nil {
				t.Errorf("approving the code: %v", err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("approving the code: %s %s", resp.Status, body)
			}
			approved++
		}
	}, "--config", cfg, "--mailbox", lab.ProviderOutlook)
	if code != exitOK || approved != 1 {
		t.Fatalf("auth login: exit %d, %d approvals\n%s%s", code, approved, out, errOut)
	}
	if !strings.HasSuffix(verifyURL, "/devicelogin") || len(userCode) != 8 || !strings.Contains(out, "sign in as seed@outlook.test") {
		t.Errorf("instructions: url %q code %q\n%s", verifyURL, userCode, out)
	}
	st, err := os.Stat(rtFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("refresh token file: %v %v", err, st)
	}
	rt, _ := os.ReadFile(rtFile)
	if !strings.HasPrefix(string(rt), "lab-rt-") || strings.Contains(out+errOut, strings.TrimSpace(string(rt))) {
		t.Fatalf("refresh token file holds %d bytes; printed: %v", len(rt), strings.Contains(out+errOut, strings.TrimSpace(string(rt))))
	}

	code, out, errOut = run(t, ctx, "auth", "test", "--config", cfg, "--mailbox", lab.ProviderOutlook)
	if code != exitOK || !strings.Contains(out, "ok   token") || !strings.Contains(out, "ok   imap outlook") || !strings.Contains(out, "xoauth2") {
		t.Fatalf("auth test after login: exit %d\n%s%s", code, out, errOut)
	}
	for _, tok := range w.Identity().Issued() {
		if strings.Contains(out+errOut, tok) {
			t.Error("auth test printed a token")
		}
	}
}

// TestAuthLoginLoopback: the authorization-code flow with PKCE (Google's
// way, run here against the lab's Microsoft-like platform): the test's
// browser opens the printed URL and is sent back to auth login's loopback
// listener with the code.
func TestAuthLoginLoopback(t *testing.T) {
	w, cfg, dir := labAuth(t, lab.M365OAuth2)
	rtFile := filepath.Join(dir, "mailbox-outlook-refresh-token.password")
	old, _ := os.ReadFile(rtFile)
	browser := labBrowser(t, w)
	visited := 0
	code, out, errOut := authLogin(t, func(line string) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "https://") {
			return
		}
		u, _ := url.Parse(line)
		if q := u.Query(); q.Get("code_challenge_method") != "S256" || !strings.HasPrefix(q.Get("redirect_uri"), "http://127.0.0.1:") {
			t.Errorf("authorization URL lacks PKCE or a loopback redirect: %s", line)
		}
		resp, err := browser.Get(line)
		if err != nil {
			t.Errorf("browser: %v", err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), "Signed in") {
			t.Errorf("the loopback listener answered %s %s", resp.Status, body)
		}
		visited++
	}, "--config", cfg, "--mailbox", lab.ProviderOutlook, "--flow", "loopback")
	if code != exitOK || visited != 1 {
		t.Fatalf("auth login --flow loopback: exit %d, %d visits\n%s%s", code, visited, out, errOut)
	}
	rt, _ := os.ReadFile(rtFile)
	if string(rt) == string(old) || !strings.HasPrefix(string(rt), "lab-rt-") {
		t.Fatal("no new refresh token stored")
	}
	if code, out, errOut := run(t, context.Background(), "auth", "test", "--config", cfg, "--mailbox", lab.ProviderOutlook); code != exitOK {
		t.Fatalf("auth test: exit %d\n%s%s", code, out, errOut)
	}
}

// TestAuthTest logs the m365 sender in over SMTP without sending: refused
// when the tenant's client secret expired (the token endpoint's reason
// printed), refused when Basic auth is disabled (535 5.7.139 and the
// diagnosis), accepted with XOAUTH2 and for Graph.
func TestAuthTest(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		mode, scenario string
		code           int
		want           []string
	}{
		// Before the healthy case: token.Shared keeps a token it got for the
		// same account across runs in this process.
		{lab.M365OAuth2, "oauth-secret-expired", exitFailed, []string{"FAIL token: sender m365", "invalid_client", "AADSTS7000222", "create a new secret"}},
		{lab.M365Password, "m365-basic-auth-disabled", exitFailed, []string{"FAIL smtp m365", "535 5.7.139", "SMTP AUTH Basic is disabled", "type: graph"}},
		{lab.M365OAuth2, lab.Healthy, exitOK, []string{"ok   token: an access token for sender m365", "ok   smtp m365", "accepted AUTH XOAUTH2", "nothing was sent"}},
		{lab.M365Password, lab.Healthy, exitOK, []string{"accepted AUTH PLAIN"}},
		{lab.M365Graph, lab.Healthy, exitOK, []string{"ok   token", "ok   graph"}},
	} {
		t.Run(tc.mode+"/"+tc.scenario, func(t *testing.T) {
			w, cfg, _ := labAuth(t, tc.mode)
			if err := w.Apply(tc.scenario); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := run(t, ctx, "auth", "test", "--config", cfg, "--sender", lab.SenderM365)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, out, errOut)
			}
			for _, s := range tc.want {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			for _, s := range w.Endpoints().Senders {
				if strings.Contains(out+errOut, s.Password) || (s.OAuth2 != nil && strings.Contains(out+errOut, s.OAuth2.ClientSecret)) {
					t.Errorf("a secret of %s was printed", s.Name)
				}
			}
		})
	}
}

// TestAuthTestIMAPRefused: a mailbox whose password the server refuses
// fails auth test at the login, with the server's answer.
func TestAuthTestIMAPRefused(t *testing.T) {
	_, cfg, dir := labAuth(t, lab.M365OAuth2)
	if err := os.WriteFile(filepath.Join(dir, "mailbox-gmail.password"), []byte("wrong-password-not-printed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, context.Background(), "auth", "test", "--config", cfg, "--mailbox", "gmail")
	if code != exitFailed || !strings.Contains(out, "FAIL imap gmail") || !strings.Contains(out, "login:") ||
		strings.Contains(out+errOut, "wrong-password-not-printed") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := run(t, context.Background(), "auth", "test", "--config", cfg, "--mailbox", "gmail", "--sender", "m365"); code != exitUsage ||
		!strings.Contains(errOut, "exactly one of --mailbox NAME or --sender NAME") {
		t.Fatalf("both flags: exit %d\n%s%s", code, out, errOut)
	}
}
