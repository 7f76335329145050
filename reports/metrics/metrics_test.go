package metrics

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/verify"
)

var pass = verify.Verdicts{Trusted: true, AuthservID: "mx.google.com", SPF: "pass", DKIM: "pass", DMARC: "pass", ARC: "none"}

// mkAttempt builds a finished attempt created at unix ms created, submitted
// a second later and seen latency after that (none when latency < 0).
func mkAttempt(probeName, sender, provider string, o attempt.Outcome, created int64, latency time.Duration, folder string, v verify.Verdicts) *attempt.Attempt {
	a := &attempt.Attempt{
		ID: fmt.Sprintf("0193a6f2-0000-7000-8000-%012d", created), Token: "tok-secret-123", MessageID: "x@mail.example.com",
		Probe: probeName, Sender: sender, Mailbox: provider + "-seed", Provider: provider,
		Outcome: o, CreatedAt: time.UnixMilli(created), Folder: folder, Verdicts: v,
	}
	a.SubmittedAt = a.CreatedAt.Add(time.Second)
	if latency >= 0 {
		a.SeenAt = a.SubmittedAt.Add(latency)
	}
	return a
}

func sequence() []*attempt.Attempt {
	late := mkAttempt("otp", "m365", "gmail", attempt.OutcomeInbox, 1795000000000, 75*time.Second, "INBOX", pass)
	late.Late = true
	return []*attempt.Attempt{
		mkAttempt("otp", "m365", "gmail", attempt.OutcomeInbox, 1795000010250, 2500*time.Millisecond, "INBOX", pass),
		mkAttempt("otp", "m365", "gmail", attempt.OutcomeSpam, 1795000020000, 40*time.Second, "[Gmail]/Spam",
			verify.Verdicts{Trusted: true, AuthservID: "mx.google.com", SPF: "pass", DKIM: "fail", DMARC: "FAIL"}),
		mkAttempt("otp", "backup", "yahoo", attempt.OutcomeSendFailed, 1795000030000, -1, "", verify.Verdicts{}),
		late, // created before the others: must not move the timestamps back
		mkAttempt("otp", "m365", "outlook", attempt.OutcomeInbox, 1795000040000, 500*time.Millisecond, "Inbox",
			verify.Verdicts{SPF: "pass", DKIM: "pass", DMARC: "pass"}), // no trusted header
		mkAttempt("otp", "m365", "outlook", attempt.OutcomePending, 1795000050000, -1, "", verify.Verdicts{}),
		mkAttempt("otp", "backup", "yahoo", attempt.OutcomeLost, 1795000060000, -1, "", verify.Verdicts{}),
	}
}

func TestObserveAttempt(t *testing.T) {
	m := New("eu-1")
	for _, a := range sequence() {
		m.ObserveAttempt(a)
	}
	m.ObserveAttempt(nil)

	const want = `
# HELP otpprobe_attempts_total Probe attempts by final outcome (inbox, spam, bounced, send_failed, lost).
# TYPE otpprobe_attempts_total counter
otpprobe_attempts_total{agent="eu-1",outcome="inbox",probe="otp",provider="gmail",sender="m365"} 2
otpprobe_attempts_total{agent="eu-1",outcome="spam",probe="otp",provider="gmail",sender="m365"} 1
otpprobe_attempts_total{agent="eu-1",outcome="inbox",probe="otp",provider="outlook",sender="m365"} 1
otpprobe_attempts_total{agent="eu-1",outcome="send_failed",probe="otp",provider="yahoo",sender="backup"} 1
otpprobe_attempts_total{agent="eu-1",outcome="lost",probe="otp",provider="yahoo",sender="backup"} 1
# HELP otpprobe_late_attempts_total Attempts delivered (inbox or spam) after the probe's latency SLO.
# TYPE otpprobe_late_attempts_total counter
otpprobe_late_attempts_total{agent="eu-1",probe="otp",provider="gmail",sender="m365"} 1
# HELP otpprobe_auth_results_total Receiver verdicts on delivered canaries by method (spf, dkim, dmarc, arc) and RFC 8601 result; untrusted when no header from the configured authserv-id was found.
# TYPE otpprobe_auth_results_total counter
otpprobe_auth_results_total{agent="eu-1",method="spf",provider="gmail",result="pass",sender="m365"} 3
otpprobe_auth_results_total{agent="eu-1",method="dkim",provider="gmail",result="pass",sender="m365"} 2
otpprobe_auth_results_total{agent="eu-1",method="dkim",provider="gmail",result="fail",sender="m365"} 1
otpprobe_auth_results_total{agent="eu-1",method="dmarc",provider="gmail",result="pass",sender="m365"} 2
otpprobe_auth_results_total{agent="eu-1",method="dmarc",provider="gmail",result="fail",sender="m365"} 1
otpprobe_auth_results_total{agent="eu-1",method="arc",provider="gmail",result="none",sender="m365"} 2
otpprobe_auth_results_total{agent="eu-1",method="arc",provider="gmail",result="unknown",sender="m365"} 1
otpprobe_auth_results_total{agent="eu-1",method="spf",provider="outlook",result="untrusted",sender="m365"} 1
otpprobe_auth_results_total{agent="eu-1",method="dkim",provider="outlook",result="untrusted",sender="m365"} 1
otpprobe_auth_results_total{agent="eu-1",method="dmarc",provider="outlook",result="untrusted",sender="m365"} 1
otpprobe_auth_results_total{agent="eu-1",method="arc",provider="outlook",result="untrusted",sender="m365"} 1
# HELP otpprobe_last_attempt_timestamp_seconds Creation time of the newest attempt with a final outcome.
# TYPE otpprobe_last_attempt_timestamp_seconds gauge
otpprobe_last_attempt_timestamp_seconds{agent="eu-1",probe="otp",provider="gmail",sender="m365"} 1795000020
otpprobe_last_attempt_timestamp_seconds{agent="eu-1",probe="otp",provider="outlook",sender="m365"} 1795000040
otpprobe_last_attempt_timestamp_seconds{agent="eu-1",probe="otp",provider="yahoo",sender="backup"} 1795000060
# HELP otpprobe_last_success_timestamp_seconds Creation time of the newest attempt that reached the inbox (late or not); the process's start until the first.
# TYPE otpprobe_last_success_timestamp_seconds gauge
otpprobe_last_success_timestamp_seconds{agent="eu-1",probe="otp",provider="gmail",sender="m365"} 1795000010.25
otpprobe_last_success_timestamp_seconds{agent="eu-1",probe="otp",provider="outlook",sender="m365"} 1795000040
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"otpprobe_attempts_total", "otpprobe_late_attempts_total", "otpprobe_auth_results_total",
		"otpprobe_last_attempt_timestamp_seconds", "otpprobe_last_success_timestamp_seconds"); err != nil {
		t.Fatal(err)
	}

	// The latency histogram: classic buckets by hand, and a native part.
	hists := map[string]*dto.Histogram{}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "otpprobe_delivery_latency_seconds" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			var key []string
			for _, l := range mt.GetLabel() {
				key = append(key, l.GetName()+"="+l.GetValue())
			}
			hists[strings.Join(key, ",")] = mt.GetHistogram()
		}
	}
	for key, w := range map[string]struct {
		count uint64
		sum   float64
		le    map[float64]uint64
	}{
		"agent=eu-1,folder=INBOX,provider=gmail,sender=m365":        {2, 77.5, map[float64]uint64{1: 0, 5: 1, 60: 1, 120: 2, 1800: 2}},
		"agent=eu-1,folder=[Gmail]/Spam,provider=gmail,sender=m365": {1, 40, map[float64]uint64{30: 0, 60: 1}},
		"agent=eu-1,folder=INBOX,provider=outlook,sender=m365":      {1, 0.5, map[float64]uint64{1: 1}},
	} {
		h := hists[key]
		if h == nil {
			t.Errorf("no latency histogram %s; have %v", key, hists)
			continue
		}
		if h.GetSampleCount() != w.count || h.GetSampleSum() != w.sum {
			t.Errorf("%s: count %d sum %g, want %d %g", key, h.GetSampleCount(), h.GetSampleSum(), w.count, w.sum)
		}
		buckets := map[float64]uint64{}
		for _, b := range h.GetBucket() {
			buckets[b.GetUpperBound()] = b.GetCumulativeCount()
		}
		for le, n := range w.le {
			if got, ok := buckets[le]; !ok || got != n {
				t.Errorf("%s: bucket le=%g has %d (present %v), want %d", key, le, got, ok, n)
			}
		}
		if h.Schema == nil || h.GetSchema() != 3 { // factor 1.1 → schema 3
			t.Errorf("%s: native histogram schema %v, want 3", key, h.Schema)
		}
	}
	if len(hists) != 3 {
		t.Errorf("%d latency series, want 3", len(hists))
	}
}

func TestLabelsAndLint(t *testing.T) {
	m := New("eu-1")
	for _, a := range sequence() {
		m.ObserveAttempt(a)
	}
	m.InitSeries("otp", "backup", "gmail")
	m.SkippedRun("otp")
	m.SetWatcher("gmail-seed", "INBOX", true, time.Time{})
	m.SetRoute("otp", "m365", "primary")
	m.Failover("otp", "m365", "backup")
	m.DNSChanged("m365", "spf")
	m.SetDNSFindings("m365", map[string]int{"critical": 1})

	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}

	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		for _, mt := range mf.GetMetric() {
			if !hasLabel(mt, "agent", "eu-1") {
				t.Errorf("%s %v has no agent label", mf.GetName(), mt.GetLabel())
			}
		}
	}
	for _, n := range []string{
		"otpprobe_attempts_total", "otpprobe_late_attempts_total", "otpprobe_delivery_latency_seconds",
		"otpprobe_auth_results_total", "otpprobe_last_attempt_timestamp_seconds", "otpprobe_last_success_timestamp_seconds",
		"otpprobe_scheduler_skipped_runs_total", "otpprobe_watcher_up", "otpprobe_route_active_sender", "otpprobe_route_state",
		"otpprobe_failovers_total", "otpprobe_dns_changes_total", "otpprobe_dns_findings", "otpprobe_build_info",
		"go_goroutines", "process_cpu_seconds_total",
	} {
		if !names[n] {
			t.Errorf("metric %s is not exposed", n)
		}
	}
}

func hasLabel(mt *dto.Metric, name, value string) bool {
	for _, l := range mt.GetLabel() {
		if l.GetName() == name {
			return l.GetValue() == value
		}
	}
	return false
}

// TestCardinalityBounded feeds attempts whose names are all different (as
// if a bug put IDs into them) and checks the series stay capped, and that
// IDs, tokens and addresses never reach the exposition.
func TestCardinalityBounded(t *testing.T) {
	m := New("eu-1")
	const n = 3000
	for i := range n {
		a := mkAttempt(fmt.Sprintf("p%d", i), fmt.Sprintf("s%d", i), fmt.Sprintf("prov%d", i),
			attempt.Outcome(finalOutcomes[i%len(finalOutcomes)]), 1795000000000+int64(i), time.Second, fmt.Sprintf("f%d", i), pass)
		m.ObserveAttempt(a)
		m.SetWatcher(fmt.Sprintf("mb%d", i), fmt.Sprintf("f%d", i), true, time.Time{})
	}
	limit := maxLabelValues + len(finalOutcomes)
	for name, max := range map[string]int{
		"otpprobe_attempts_total":                 limit,
		"otpprobe_delivery_latency_seconds":       limit,
		"otpprobe_auth_results_total":             limit * len(authMethods),
		"otpprobe_last_attempt_timestamp_seconds": limit,
		"otpprobe_watcher_up":                     limit,
	} {
		got, err := testutil.GatherAndCount(m.Registry(), name)
		if err != nil {
			t.Fatal(err)
		}
		if got > max || got < 10 {
			t.Errorf("%s has %d series, want between 10 and %d", name, got, max)
		}
	}
	if got := testutil.ToFloat64(m.attempts.WithLabelValues("other", "other", "other", "inbox")); got != float64((n-maxLabelValues)/len(finalOutcomes)) {
		t.Errorf(`attempts past the cap counted under "other": %g`, got)
	}

	body := scrape(t, m.Handler(), "")
	for _, secret := range []string{"tok-secret-123", "0193a6f2", "@mail.example.com", "-seed"} {
		if strings.Contains(body, secret) {
			t.Errorf("exposition contains %q", secret)
		}
	}
}

func scrape(t *testing.T, h http.Handler, accept string) string {
	t.Helper()
	body, err := get(h, accept)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// get serves one scrape over real HTTP; it returns the content type, a
// newline and the body.
func get(h http.Handler, accept string) (string, error) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
	if err != nil {
		return "", err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("scrape: %s", resp.Status)
	}
	return resp.Header.Get("Content-Type") + "\n" + string(b), nil
}

func TestHandler(t *testing.T) {
	m := New("eu-1")
	m.SetVersion("v1.2.3")
	for _, a := range sequence() {
		m.ObserveAttempt(a)
	}
	om := scrape(t, m.Handler(), "application/openmetrics-text;version=1.0.0")
	if !strings.HasPrefix(om, "application/openmetrics-text") || !strings.HasSuffix(om, "# EOF\n") {
		t.Errorf("OpenMetrics scrape: %.200s", om)
	}
	text := scrape(t, m.Handler(), "")
	if !strings.HasPrefix(text, "text/plain") {
		t.Errorf("plain scrape content type: %.60s", text)
	}
	for _, want := range []string{
		`otpprobe_build_info{agent="eu-1",goversion="go`, `version="v1.2.3"} 1`,
		`otpprobe_delivery_latency_seconds_bucket{agent="eu-1",folder="INBOX",provider="gmail",sender="m365",le="60"} 1`,
		`promhttp_metric_handler_requests_total{agent="eu-1",code="200"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
}

func TestEvents(t *testing.T) {
	m := New("eu-1")
	m.SkippedRun("otp")
	m.SkippedRun("otp")
	m.SetWatcher("gmail-seed", "inbox", true, time.Time{})
	m.SetWatcher("gmail-seed", "[Gmail]/Spam", true, time.Time{})
	m.SetWatcher("gmail-seed", "[Gmail]/Spam", false, time.Time{})
	m.SetRoute("otp", "m365", "primary")
	m.SetRoute("otp", "backup", "backup")
	m.SetRoute("otp", "backup", "pinned")
	m.Failover("otp", "m365", "backup")
	m.DNSChanged("m365", "dkim")
	m.SetDNSFindings("m365", map[string]int{"critical": 2, "warning": 1, "weird": 1})
	m.SetDNSFindings("m365", map[string]int{"critical": 1})

	const want = `
# HELP otpprobe_scheduler_skipped_runs_total Scheduled probe runs skipped because the previous run was still going.
# TYPE otpprobe_scheduler_skipped_runs_total counter
otpprobe_scheduler_skipped_runs_total{agent="eu-1",probe="otp"} 2
# HELP otpprobe_watcher_up Whether the IMAP watcher of a folder is connected and selected (1) or not (0).
# TYPE otpprobe_watcher_up gauge
otpprobe_watcher_up{agent="eu-1",folder="INBOX",mailbox="gmail-seed"} 1
otpprobe_watcher_up{agent="eu-1",folder="[Gmail]/Spam",mailbox="gmail-seed"} 0
# HELP otpprobe_route_active_sender 1 for the sender a route currently sends OTP mail through.
# TYPE otpprobe_route_active_sender gauge
otpprobe_route_active_sender{agent="eu-1",route="otp",sender="backup"} 1
# HELP otpprobe_route_state 1 for the failover state a route is in (primary, failing_over, backup, recovering), 0 for the others it has been in.
# TYPE otpprobe_route_state gauge
otpprobe_route_state{agent="eu-1",route="otp",state="primary"} 0
otpprobe_route_state{agent="eu-1",route="otp",state="failing_over"} 0
otpprobe_route_state{agent="eu-1",route="otp",state="backup"} 0
otpprobe_route_state{agent="eu-1",route="otp",state="recovering"} 0
otpprobe_route_state{agent="eu-1",route="otp",state="pinned"} 1
# HELP otpprobe_failovers_total Route switches from one sender to another.
# TYPE otpprobe_failovers_total counter
otpprobe_failovers_total{agent="eu-1",from="m365",route="otp",to="backup"} 1
# HELP otpprobe_dns_changes_total Changes seen in a sender's mail DNS records (spf, dkim, dmarc, mx, ...).
# TYPE otpprobe_dns_changes_total counter
otpprobe_dns_changes_total{agent="eu-1",record="dkim",sender="m365"} 1
# HELP otpprobe_dns_findings Current DNS posture findings of a sender by severity.
# TYPE otpprobe_dns_findings gauge
otpprobe_dns_findings{agent="eu-1",sender="m365",severity="critical"} 1
otpprobe_dns_findings{agent="eu-1",sender="m365",severity="warning"} 0
otpprobe_dns_findings{agent="eu-1",sender="m365",severity="info"} 0
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"otpprobe_scheduler_skipped_runs_total", "otpprobe_watcher_up", "otpprobe_route_active_sender", "otpprobe_route_state",
		"otpprobe_failovers_total", "otpprobe_dns_changes_total", "otpprobe_dns_findings"); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrent observes and scrapes at once; run it under -race.
func TestConcurrent(t *testing.T) {
	m := New("eu-1")
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				m.ObserveAttempt(mkAttempt("otp", "m365", "gmail", attempt.OutcomeInbox, 1795000000000+int64(g*1000+i), time.Second, "INBOX", pass))
				m.SetRoute("otp", "m365", routeStates[i%len(routeStates)])
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if _, err := get(m.Handler(), ""); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	if got := testutil.ToFloat64(m.attempts.WithLabelValues("otp", "m365", "gmail", "inbox")); got != 800 {
		t.Fatalf("attempts_total = %g, want 800", got)
	}
	if got := testutil.ToFloat64(m.lastSuccess.WithLabelValues("otp", "m365", "gmail")); got != 1795000003.199 {
		t.Fatalf("last success = %.3f, want the newest attempt's 1795000003.199", got)
	}
}

func TestLatencyBuckets(t *testing.T) {
	want := []float64{1, 2, 3.9, 5, 7.7, 10, 15, 30, 60, 120, 230, 300, 460, 600, 910, 1800}
	if !slices.Equal(LatencyBuckets, want) {
		t.Fatalf("LatencyBuckets = %v, want %v", LatencyBuckets, want)
	}
}

// BenchmarkObserveAttempt is the metrics cost of one finished attempt.
func BenchmarkObserveAttempt(b *testing.B) {
	m := New("eu-1")
	as := sequence()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.ObserveAttempt(as[i%len(as)])
		i++
	}
}
