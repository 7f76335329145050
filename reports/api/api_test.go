package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/probe"
	"github.com/otpprobe/otpprobe/reports/alert"
	"github.com/otpprobe/otpprobe/reports/api"
	"github.com/otpprobe/otpprobe/reports/evidence"
	"github.com/otpprobe/otpprobe/reports/failover"
	"github.com/otpprobe/otpprobe/reports/slo"
	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
)

const config = `
senders:
  - {name: m365, host: smtp.example.com, auth: {username: u, password: p}, from: otp@example.com}
  - {name: backup, host: relay.example.com, auth: {username: u, password: p}, from: otp@example.com}
mailboxes:
  - {name: gmail, provider: gmail, address: seed@gmail.example, auth: {username: u, password: p}}
probes:
  - {name: otp, schedule: "@every 1m", senders: [m365, backup], mailboxes: [gmail]}
routes:
  - {name: otp, primary: m365, backups: [backup]}
slos:
  - {name: otp-inbox, route: otp, objective: 99.5}
`

func newServer(t *testing.T) (*httptest.Server, *store.SQLite) {
	cfg, err := targets.Parse([]byte(config), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "otpprobe.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f, err := failover.New(ctx, cfg, failover.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	m, err := alert.New(ctx, alert.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Fire(ctx, alert.Alert{Name: alert.SenderDown, Labels: map[string]string{"sender": "m365"}, Summary: "down"}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux, api.Options{Routes: f, SLOs: slo.New(cfg, slo.Options{Store: st}), Alerts: m, Attempts: st, Incidents: st,
		Evidence: evidence.Builder{Reader: st, Config: cfg}})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, st
}

func do(t *testing.T, method, url, contentType, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, string(data)
}

func TestRouteETag(t *testing.T) {
	srv, _ := newServer(t)
	resp, body := do(t, "GET", srv.URL+"/api/v1/routes/otp", "", "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET route: %d %s", resp.StatusCode, body)
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"route", "active_sender", "state", "since", "reason", "diagnosis", "evidence"} {
		if _, ok := d[k]; !ok {
			t.Errorf("decision has no %q: %s", k, body)
		}
	}
	if d["active_sender"] != "m365" || d["state"] != "primary" {
		t.Errorf("decision %s", body)
	}
	if ev, ok := d["evidence"].([]any); !ok || ev == nil {
		t.Errorf("evidence must be a list, never null: %s", body)
	}
	etag := resp.Header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) {
		t.Fatalf("ETag %q", etag)
	}
	resp, body = do(t, "GET", srv.URL+"/api/v1/routes/otp", "", "", "If-None-Match", etag)
	if resp.StatusCode != http.StatusNotModified || body != "" || resp.Header.Get("ETag") != etag {
		t.Errorf("If-None-Match with the current ETag: %d %q", resp.StatusCode, body)
	}
	resp, _ = do(t, "GET", srv.URL+"/api/v1/routes/otp", "", "", "If-None-Match", `"other", W/`+etag)
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match list with a weak match: %d", resp.StatusCode)
	}

	// A pin changes the decision and so the ETag.
	resp, body = do(t, "POST", srv.URL+"/api/v1/routes/otp/pin", "application/json", `{"sender":"backup","reason":"tenant maintenance"}`)
	if resp.StatusCode != 200 || !strings.Contains(body, `"active_sender":"backup"`) || !strings.Contains(body, `"pinned":true`) {
		t.Fatalf("pin: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", srv.URL+"/api/v1/routes/otp", "", "", "If-None-Match", etag)
	if resp.StatusCode != 200 || resp.Header.Get("ETag") == etag || !strings.Contains(body, `"state":"pinned"`) {
		t.Errorf("after the pin: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "POST", srv.URL+"/api/v1/routes/otp/unpin", "application/json", "")
	if resp.StatusCode != 200 || !strings.Contains(body, `"pinned":false`) {
		t.Errorf("unpin: %d %s", resp.StatusCode, body)
	}
}

func TestBadRequests(t *testing.T) {
	srv, _ := newServer(t)
	cases := []struct {
		method, path, ctype, body string
		code                      int
		msg                       string
	}{
		{"GET", "/api/v1/routes/nope", "", "", 404, `unknown route \"nope\"`},
		{"POST", "/api/v1/routes/otp/pin", "text/plain", `{"sender":"backup"}`, 415, "application/json"},
		{"POST", "/api/v1/routes/otp/pin", "application/json", `{"sender":`, 400, "invalid JSON body"},
		{"POST", "/api/v1/routes/otp/pin", "application/json", `{"sender":"backup","colour":"red"}`, 400, "unknown field"},
		{"POST", "/api/v1/routes/otp/pin", "application/json", `{"sender":"backup"}{}`, 400, "more than one value"},
		{"POST", "/api/v1/routes/otp/pin", "application/json", `{}`, 400, `\"sender\" is required`},
		{"POST", "/api/v1/routes/otp/pin", "application/json", `{"sender":"sendgrid"}`, 400, "not on this route"},
		{"POST", "/api/v1/routes/nope/pin", "application/json", `{"sender":"backup"}`, 404, "unknown route"},
		{"POST", "/api/v1/routes/otp/pin", "application/json", `{"sender":"` + strings.Repeat("x", 8000) + `"}`, 413, "larger than 4096 bytes"},
		{"POST", "/api/v1/routes/otp/unpin", "", "", 415, "application/json"},
		{"DELETE", "/api/v1/routes/otp", "", "", 405, ""},
	}
	for _, c := range cases {
		resp, body := do(t, c.method, srv.URL+c.path, c.ctype, c.body)
		if resp.StatusCode != c.code || !strings.Contains(body, c.msg) {
			t.Errorf("%s %s %q: %d %s, want %d containing %q", c.method, c.path, c.body[:min(len(c.body), 40)], resp.StatusCode, body, c.code, c.msg)
		}
	}
}

func TestSLOAndAlerts(t *testing.T) {
	srv, st := newServer(t)
	ctx := context.Background()
	now := time.Now().UTC()
	for i := range 10 {
		a, err := probe.NewAttempt(now.Add(-time.Duration(i)*time.Minute), "otp", "m365", "otp@example.com", "gmail", "gmail", time.Minute, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		a.Outcome, a.SubmittedAt, a.SeenAt = attempt.OutcomeInbox, a.CreatedAt, a.CreatedAt.Add(3*time.Second)
		if i == 0 {
			a.Outcome, a.SeenAt = attempt.OutcomeLost, time.Time{}
		}
		if err := st.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	resp, body := do(t, "GET", srv.URL+"/api/v1/slo", "", "")
	var sts []slo.Status
	if err := json.Unmarshal([]byte(body), &sts); err != nil || resp.StatusCode != 200 || len(sts) != 1 {
		t.Fatalf("GET /api/v1/slo: %d %s (%v)", resp.StatusCode, body, err)
	}
	s := sts[0]
	if s.Good != 9 || s.Total != 10 || s.SLI != 0.9 || s.Route != "otp" {
		t.Errorf("SLO %+v", s)
	}
	if s.BurnRates["1h"] < 19.9 || s.BurnRates["1h"] > 20.1 || !s.FastBurn() {
		t.Errorf("10%% bad at 99.5%%: burn rates %v, alerts %+v", s.BurnRates, s.Alerts)
	}
	resp, body = do(t, "GET", srv.URL+"/api/v1/alerts", "", "")
	if resp.StatusCode != 200 || !strings.Contains(body, `"name":"OTPSenderDown"`) {
		t.Errorf("GET /api/v1/alerts: %d %s", resp.StatusCode, body)
	}
}

// BenchmarkRouteDecision is the OTP application's per-send call: GET the
// route's decision, mostly answered 304 from its ETag.
func BenchmarkRouteDecision(b *testing.B) {
	cfg, err := targets.Parse([]byte(config), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	st, err := store.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "otpprobe.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	f, err := failover.New(context.Background(), cfg, failover.Options{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux, api.Options{Routes: f})
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/routes/otp", nil))
	etag := rec.Header().Get("ETag")
	for _, tc := range []struct{ name, inm string }{{"200", ""}, {"304", etag}} {
		b.Run(tc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/api/v1/routes/otp", nil)
			if tc.inm != "" {
				req.Header.Set("If-None-Match", tc.inm)
			}
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				mux.ServeHTTP(rec, req)
				if rec.Code != 200 && rec.Code != 304 {
					b.Fatal(rec.Code)
				}
			}
		})
	}
}
