package dashboard_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/reports/dashboard"
	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
)

const config = `
senders:
  - {name: m365, host: smtp.example.com, auth: {username: u, password: p}, from: otp@example.com}
  - {name: backup, host: relay.example.com, auth: {username: u, password: p}, from: otp@example.com}
mailboxes:
  - {name: gmail, provider: gmail, address: seed@gmail.example, auth: {username: u, password: p}}
  - {name: yahoo, provider: yahoo, address: seed@yahoo.example, auth: {username: u, password: p}}
probes:
  - {name: otp, schedule: "@every 1m", senders: [m365, backup], mailboxes: [gmail, yahoo]}
`

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestPages(t *testing.T) {
	ctx := context.Background()
	cfg, err := targets.Parse([]byte(config), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "otpprobe.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC()
	for i := range 8 {
		created := now.Add(-time.Duration(8-i) * time.Minute)
		a := &attempt.Attempt{ID: fmt.Sprintf("01a0-%d", i), RoundID: "r", Probe: "otp", Sender: []string{"m365", "backup"}[i%2],
			Mailbox: []string{"gmail", "gmail", "yahoo", "yahoo"}[i%4], Provider: []string{"gmail", "gmail", "yahoo", "yahoo"}[i%4],
			CreatedAt: created, SubmittedAt: created.Add(time.Second), Outcome: attempt.OutcomeInbox,
			SeenAt: created.Add(time.Duration(2+i) * time.Second), Transcript: "S: 220 mx <ready>\r\n", Header: "Subject: code\r\n"}
		if i == 6 {
			a.Outcome, a.SeenAt, a.Diagnosis = attempt.OutcomeLost, time.Time{}, "DKIM selector1 has no key"
		}
		if err := st.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	dashboard.Register(mux, dashboard.Options{Config: cfg, History: st})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	code, body := get(t, srv.URL+"/")
	if code != http.StatusOK {
		t.Fatalf("/: %d %s", code, body)
	}
	for _, want := range []string{`href="/attempts/01a0-6"`, "o-lost", "m365", "backup", "yahoo", "<svg", "/assets/live.js", `id="live"`} {
		if !strings.Contains(body, want) {
			t.Errorf("/ lacks %q", want)
		}
	}
	if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Error("/ refers to another origin")
	}
	if code, live := get(t, srv.URL+"/live"); code != http.StatusOK || !strings.Contains(live, `href="/attempts/01a0-6"`) || strings.Contains(live, "<html") {
		t.Errorf("/live: %d", code)
	}
	code, body = get(t, srv.URL+"/attempts/01a0-6")
	for _, want := range []string{"lost", "DKIM selector1 has no key", "S: 220 mx &lt;ready&gt;", "/api/v1/evidence?id=01a0-6"} {
		if !strings.Contains(body, want) {
			t.Errorf("attempt page lacks %q (%d)", want, code)
		}
	}
	if code, _ := get(t, srv.URL+"/attempts/nope"); code != http.StatusNotFound {
		t.Errorf("unknown attempt: %d", code)
	}
	for _, a := range []string{"/assets/style.css", "/assets/live.js"} {
		if code, _ := get(t, srv.URL+a); code != http.StatusOK {
			t.Errorf("%s: %d", a, code)
		}
	}
}
