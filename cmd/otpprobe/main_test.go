package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/reports/api"
	"github.com/otpprobe/otpprobe/targets"
)

// run runs the CLI in process and returns its exit code and output.
func run(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := dispatch(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

type onceJSON struct {
	Healthy  bool          `json:"healthy"`
	Attempts []onceAttempt `json:"attempts"`
}

// onceAttempt is what the tests read of an attempt in once --format json.
type onceAttempt struct {
	Sender, Mailbox, Outcome, Folder string
	RoundID                          string `json:"round_id"`
	Late                             bool
	SubmittedAt                      string `json:"submitted_at"`
	SeenAt                           string `json:"seen_at"`
	Diagnosis                        string
	SMTP                             struct {
		Stage    string
		Code     int
		Enhanced string
		Reply    string
	}
	Verdicts struct {
		Trusted          bool
		SPF, DKIM, DMARC string
		DKIMRecheck      []struct {
			Selector, Result string
			BodyChecked      bool `json:"body_checked"`
		} `json:"dkim_recheck"`
	}
}

func labOnce(t *testing.T, wantCode int, args ...string) onceJSON {
	t.Helper()
	code, out, errOut := run(t, context.Background(), append([]string{"lab", "--once", "--format", "json", "--listen", "127.0.0.1:0"}, args...)...)
	if code != wantCode {
		t.Fatalf("otpprobe lab --once %v: exit %d, want %d\n%s\n%s", args, code, wantCode, out, errOut)
	}
	var res onceJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("once JSON: %v\n%s", err, out)
	}
	if len(res.Attempts) != 6 {
		t.Fatalf("%d attempts, want 6", len(res.Attempts))
	}
	return res
}

func TestLabOnceHealthy(t *testing.T) {
	res := labOnce(t, exitOK)
	if !res.Healthy {
		t.Error("healthy=false")
	}
	for _, a := range res.Attempts {
		if a.RoundID == "" || a.RoundID != res.Attempts[0].RoundID {
			t.Errorf("%s→%s: round_id %q, want the one round's ID (%q)", a.Sender, a.Mailbox, a.RoundID, res.Attempts[0].RoundID)
		}
		v := a.Verdicts
		if a.Outcome != "inbox" || a.Late || !v.Trusted || v.SPF != "pass" || v.DKIM != "pass" || v.DMARC != "pass" {
			t.Errorf("%s→%s: %+v", a.Sender, a.Mailbox, a)
		}
		// Our own DKIM check of the whole delivered message, with the selector.
		if rc := v.DKIMRecheck; len(rc) != 1 || rc[0].Result != "pass" || !rc[0].BodyChecked || rc[0].Selector == "" {
			t.Errorf("%s→%s: dkim_recheck %+v, want one pass over header and body", a.Sender, a.Mailbox, rc)
		}
		if _, err := time.Parse("2006-01-02T15:04:05.000Z07:00", a.SeenAt); err != nil {
			t.Errorf("seen_at %q is not RFC 3339 with milliseconds", a.SeenAt)
		}
	}
}

func TestLabOnceM365Outage(t *testing.T) {
	res := labOnce(t, exitFailed, "--scenario", "m365-outage")
	for _, a := range res.Attempts {
		switch a.Sender {
		case lab.SenderM365:
			if a.Outcome != "send_failed" || a.SMTP.Stage == "" || a.SMTP.Code != 421 || a.SMTP.Enhanced != "4.3.2" {
				t.Errorf("m365→%s: %s %+v, want send_failed at the 421 4.3.2 greeting", a.Mailbox, a.Outcome, a.SMTP)
			}
		case lab.SenderBackup:
			if a.Outcome != "inbox" {
				t.Errorf("backup→%s: %s", a.Mailbox, a.Outcome)
			}
		}
	}
}

func TestLabOnceProviderDrop(t *testing.T) {
	res := labOnce(t, exitFailed, "--scenario", "provider-drop", "--deadline", "3s")
	for _, a := range res.Attempts {
		want := "inbox"
		if a.Mailbox == lab.ProviderGmail {
			want = "lost"
		}
		if a.Outcome != want {
			t.Errorf("%s→%s: %s, want %s", a.Sender, a.Mailbox, a.Outcome, want)
		}
	}
}

func TestLabServeWritesEndpoints(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	path := filepath.Join(t.TempDir(), "endpoints.json")
	done := make(chan int, 1)
	go func() {
		code, _, _ := run(t, ctx, "lab", "serve", "--scenario", "dmarc-record-removed", "--endpoints-file", path)
		done <- code
	}()
	var ep *lab.Endpoints
	deadline := time.Now().Add(30 * time.Second)
	for ep == nil && time.Now().Before(deadline) {
		if e, err := lab.LoadEndpoints(path); err == nil {
			ep = e
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if ep == nil {
		cancel()
		t.Fatal("no endpoints file")
	}
	if len(ep.Senders) != 2 || len(ep.Mailboxes) != 3 || ep.Bounces == nil || ep.DNS == "" || ep.CAFile == "" {
		t.Errorf("endpoints: %+v", ep)
	}
	for _, m := range ep.Mailboxes {
		if m.AuthservID == "" || m.Junk == "" || m.Password == "" || m.Port == 0 {
			t.Errorf("mailbox %+v", m)
		}
	}
	resp, err := http.Get(ep.Control + "/state")
	if err != nil {
		t.Fatal(err)
	}
	var st lab.State
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if len(st.Scenarios) != 1 || st.Scenarios[0] != "dmarc-record-removed" {
		t.Errorf("state scenarios %v", st.Scenarios)
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("lab serve exit %d after SIGTERM-like cancel", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("lab serve did not stop")
	}
}

func TestLabScenariosListsEveryScenario(t *testing.T) {
	code, out, _ := run(t, context.Background(), "lab", "scenarios")
	if code != exitOK {
		t.Fatal(code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(lab.Scenarios()) {
		t.Fatalf("%d lines, want %d", len(lines), len(lab.Scenarios()))
	}
	for i, s := range lab.Scenarios() {
		if !strings.HasPrefix(lines[i], s.Name+" ") || !strings.Contains(lines[i], s.Description) {
			t.Errorf("line %d: %q", i, lines[i])
		}
	}
}

func TestValidate(t *testing.T) {
	t.Setenv("BACKUP_RELAY_PASSWORD", "s3cret-relay-password")
	code, out, errOut := run(t, context.Background(), "validate", "--config", "../../configs/example.yaml")
	if code != exitOK {
		t.Fatalf("validate example.yaml: %d %s", code, errOut)
	}
	if strings.Contains(out+errOut, "s3cret-relay-password") {
		t.Fatal("validate printed a secret")
	}
	matches, _ := filepath.Glob("../../configs/testdata/invalid-*.yaml")
	if len(matches) == 0 {
		t.Fatal("no invalid configs")
	}
	for _, m := range matches {
		code, out, errOut := run(t, context.Background(), "validate", "--config", m)
		if code != exitUsage || out != "" || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || errOut == "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2 and one line", filepath.Base(m), code, out, errOut)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"nope"}, {"once"}, {"once", "--config", "x", "--format", "xml"}, {"validate", "config.yaml"}, {"run", "--config", "x", "extra"}, {"lab", "serve", "extra"}, {"lab", "--scenario", "nope", "--once"}} {
		if code, _, _ := run(t, context.Background(), args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}

// A negative --deadline is refused by name, before the config is read.
func TestNegativeDeadline(t *testing.T) {
	for _, args := range [][]string{{"once", "--config", "x", "--deadline", "-5s"}, {"lab", "--once", "--deadline", "-5s"}} {
		code, _, errOut := run(t, context.Background(), args...)
		if code != exitUsage || !strings.Contains(errOut, "--deadline must not be negative") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line naming --deadline", args, code, errOut)
		}
	}
}

// The daemon serves /metrics and /healthz and stops cleanly, leaving every
// attempt it created in the store.
func TestRunServesMetrics(t *testing.T) {
	w, err := lab.Start(context.Background(), lab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	dir := t.TempDir()
	cfgPath, err := w.Endpoints().WriteConfig(lab.ConfigOptions{Dir: dir, Schedule: "@every 1s", Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, code := loadConfig(cfgPath, "run", io.Discard)
	if cfg == nil {
		t.Fatal(code)
	}
	p, err := openProber(context.Background(), cfg, discardLogger(), daemonOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := serveHTTP(ctx, targets.HTTP{Listen: "127.0.0.1:0"}, api.NewAuth(targets.HTTP{}, nil).Wrap(p.handler()), discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.engine.Start(ctx); err != nil {
		t.Fatal(err)
	}
	round, err := p.engine.Round(ctx, "otp")
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, a := range round.Attempts {
		ids = append(ids, a.ID)
	}
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	if err := p.engine.Wait(wctx, ids...); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/healthz": "ok",
		"/metrics": `otpprobe_attempts_total{agent="lab",outcome="inbox",probe="otp",provider="gmail",sender="m365"} 1`,
	} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), want) {
			t.Errorf("GET %s lacks %q:\n%.2000s", path, want, body)
		}
	}
}

// TestRunRefusesAnOpenAPIOnTheNetwork: without tokens, run listens beyond
// loopback only when the config says allow_unauthenticated.
func TestRunRefusesAnOpenAPIOnTheNetwork(t *testing.T) {
	dir := t.TempDir()
	cfg := `
senders:
  - {name: relay, host: 127.0.0.1, port: 1, tls: starttls, from: otp@example.com}
mailboxes:
  - {name: seed, provider: generic, address: seed@example.com, host: 127.0.0.1, port: 1, authserv_id: mx.example.com, auth: {username: u, password: p}}
probes:
  - {name: otp, schedule: "@every 1m", senders: [relay], mailboxes: [seed]}
store: {path: ` + filepath.Join(dir, "otpprobe.db") + `}
http: {listen: "0.0.0.0:0"}
`
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := run(t, context.Background(), "run", "--config", path)
	if code != exitUsage || !strings.Contains(errOut, "http.listen: 0.0.0.0:0 is reachable from other machines and http.tokens is empty") {
		t.Fatalf("run on 0.0.0.0 without tokens: exit %d, %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "otpprobe.db")); err == nil {
		t.Error("the store was opened before the refusal")
	}
}

// TestLabOnceBouncesPerSender: each sender returns DSNs to its own
// envelope sender (m365 to bounces@, the backup relay to relay-bounces@);
// with both rejected by gmail and yahoo, every rejection is found in the
// right mailbox and reported bounced, never lost.
func TestLabOnceBouncesPerSender(t *testing.T) {
	res := labOnce(t, exitFailed, "--scenario", "dns-zone-broken")
	for _, a := range res.Attempts {
		want, enhanced := "bounced", map[string]string{lab.ProviderGmail: "5.7.26", lab.ProviderYahoo: "5.7.9"}[a.Mailbox]
		if a.Mailbox == lab.ProviderOutlook {
			want = "spam"
		}
		if a.Outcome != want || (want == "bounced" && (a.SMTP.Stage != "bounce" || a.SMTP.Enhanced != enhanced)) {
			t.Errorf("%s→%s: %s %+v, want %s %s", a.Sender, a.Mailbox, a.Outcome, a.SMTP, want, enhanced)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, out, errOut := run(t, context.Background(), args...)
		if code != exitOK || !strings.HasPrefix(out, "otpprobe ") || !strings.Contains(out, runtime.Version()) || errOut != "" {
			t.Errorf("%v: exit %d %q %q", args, code, out, errOut)
		}
	}
	// -ldflags -X values win over the build info.
	version, revision, buildTime = "v1.4.0", "0123abc", "2026-12-05T12:00:00Z"
	defer func() { version, revision, buildTime = "", "", "" }()
	if _, out, _ := run(t, context.Background(), "version"); out != "otpprobe v1.4.0 (0123abc, 2026-12-05T12:00:00Z) "+runtime.Version()+"\n" {
		t.Errorf("with link-time values: %q", out)
	}
}

func TestLogLevelFlag(t *testing.T) {
	code, _, errOut := run(t, context.Background(), "run", "--config", "x.yaml", "--log-level", "loud")
	if code != exitUsage || !strings.Contains(errOut, `invalid value "loud" for flag -log-level: want debug, info, warn or error`) {
		t.Errorf("bad level: exit %d %s", code, errOut)
	}
	var buf bytes.Buffer
	var l logLevel
	if err := l.Set("warn"); err != nil {
		t.Fatal(err)
	}
	logger := jsonLogger(&buf, &l)
	logger.Info("hidden")
	logger.Warn("shown")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), "shown") {
		t.Errorf("at warn: %s", buf.String())
	}
}

func TestHealthcheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer read-0123456789abcdef" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/readyz" {
			http.Error(w, "store down", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	}))
	defer srv.Close()
	tok := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tok, []byte("read-0123456789abcdef\n"), 0o600)
	if code, out, _ := run(t, context.Background(), "healthcheck", "--url", srv.URL+"/healthz", "--token-file", tok); code != exitOK || out != "200 ok\n" {
		t.Errorf("healthy: exit %d %q", code, out)
	}
	if code, out, _ := run(t, context.Background(), "healthcheck", "--url", srv.URL+"/readyz", "--token-file", tok); code != exitFailed || !strings.Contains(out, "503 store down") {
		t.Errorf("not ready: exit %d %q", code, out)
	}
	if code, _, _ := run(t, context.Background(), "healthcheck", "--url", srv.URL+"/healthz"); code != exitFailed {
		t.Errorf("without the token: exit %d", code)
	}
}
