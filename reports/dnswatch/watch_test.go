package dnswatch_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/lab/dnsserver"
	"github.com/otpprobe/otpprobe/reports/dnswatch"
	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
	"github.com/otpprobe/otpprobe/verify"
	"github.com/otpprobe/otpprobe/verify/resolver"
)

// recorder keeps what the watcher told metrics and alerts.
type recorder struct {
	mu       sync.Mutex
	changed  []string // sender/record
	findings map[string]map[string]int
	events   []dnswatch.Event
}

func (r *recorder) InitDNSSender(string) {}

func (r *recorder) DNSChanged(sender, record string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changed = append(r.changed, sender+"/"+record)
}

func (r *recorder) SetDNSFindings(sender string, by map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.findings == nil {
		r.findings = map[string]map[string]int{}
	}
	r.findings[sender] = by
}

func (r *recorder) onChange(e dnswatch.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func txt(name, v string) string { return fmt.Sprintf("%s. 300 IN TXT %q", name, v) }

// world serves a small healthy zone for example.test.
func world(t *testing.T) (*dnsserver.Server, *resolver.Resolver) {
	t.Helper()
	s, err := dnsserver.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Load([]string{
		txt("example.test", "v=spf1 ip4:192.0.2.1 -all"),
		txt("_dmarc.example.test", "v=DMARC1; p=reject"),
		"example.test. 300 IN MX 10 mx.example.test.",
		"mx.example.test. 300 IN A 192.0.2.25",
	}); err != nil {
		t.Fatal(err)
	}
	r, err := resolver.New(resolver.Config{Servers: []string{s.Addr()}, Timeout: time.Second, Retries: 2})
	if err != nil {
		t.Fatal(err)
	}
	return s, r
}

func config() *targets.Config {
	return &targets.Config{Senders: []targets.Sender{{Name: "relay", From: "otp@example.test"}, {Name: "other", From: "Bank <otp@Example.test>"}}}
}

func TestChangesAgainstPreviousAndBaseline(t *testing.T) {
	ctx := context.Background()
	s, r := world(t)
	st, err := store.OpenSQLite(ctx, t.TempDir()+"/db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec := &recorder{}
	w, err := dnswatch.New(config(), dnswatch.Options{Resolver: r, Store: st, Metrics: rec, OnChange: rec.onChange})
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Domains(); len(got) != 1 || got[0] != "example.test" {
		t.Fatalf("domains = %v, want example.test once", got)
	}
	first := w.CheckAll(ctx)
	if len(first) != 1 || len(first[0].Changes) != 0 || first[0].Pinned {
		t.Fatalf("first check: %+v", first)
	}
	if err := w.Pin(ctx, first); err != nil {
		t.Fatal(err)
	}

	if err := s.Set("example.test.", dns.TypeTXT, txt("example.test", "v=spf1 ip4:192.0.2.1 include:new.example -all")); err != nil {
		t.Fatal(err)
	}
	s.Remove("_dmarc.example.test.", dns.TypeTXT)
	second := w.CheckAll(ctx)[0]
	if len(second.Changes) != 2 || len(second.Baseline) != 2 || !second.Pinned {
		t.Fatalf("after the edit: changes %+v baseline %+v", second.Changes, second.Baseline)
	}
	c := second.Changes[1] // sorted by name: _dmarc first
	if c.Name != "example.test." || c.Type != "TXT" || !strings.Contains(c.After.Data[0], "include:new.example") || c.Before.Data[0] != "v=spf1 ip4:192.0.2.1 -all" {
		t.Errorf("SPF change = %+v / %+v", c.Before, c.After)
	}
	if second.Changes[0].Name != "_dmarc.example.test." || second.Changes[0].After.Rcode != "NXDOMAIN" {
		t.Errorf("DMARC change = %+v", second.Changes[0])
	}
	// The include added is read for the first time: not a change of its own.
	for _, c := range second.Changes {
		if c.Before == nil || c.After == nil {
			t.Errorf("one-sided change reported: %+v", c)
		}
	}
	if len(rec.events) != 2 || rec.events[0].Against != store.AgainstPrevious || rec.events[1].Against != store.AgainstBaseline ||
		strings.Join(rec.events[0].Senders, ",") != "relay,other" {
		t.Errorf("events = %+v", rec.events)
	}
	if got := strings.Join(rec.changed, " "); got != "relay/dmarc relay/spf other/dmarc other/spf" {
		t.Errorf("metric changes = %s", got)
	}
	if rec.findings["relay"]["critical"] == 0 {
		t.Errorf("findings metric = %v, want the missing DMARC record counted as critical", rec.findings)
	}
	stored, err := st.DNSChanges(ctx, "example.test", time.Time{})
	if err != nil || len(stored) != 4 {
		t.Fatalf("stored changes = %d (%v), want 2 against previous + 2 against baseline", len(stored), err)
	}

	// Unchanged since: no event, though the zone still differs from the
	// baseline.
	third := w.CheckAll(ctx)[0]
	if len(third.Changes) != 0 || len(third.Baseline) != 2 || len(rec.events) != 2 {
		t.Errorf("unchanged check: changes %d baseline %d events %d", len(third.Changes), len(third.Baseline), len(rec.events))
	}

	// A restarted watcher compares with the stored snapshot.
	w2, err := dnswatch.New(config(), dnswatch.Options{Resolver: r, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	s.Remove("mx.example.test.", dns.TypeA)
	res := w2.CheckAll(ctx)[0]
	// Its A RRset went away, so its AAAA answer went from NODATA to
	// NXDOMAIN: both are changes of the MX host, nothing else is.
	if len(res.Changes) == 0 {
		t.Error("after restart: no change seen")
	}
	for _, c := range res.Changes {
		if c.Name != "mx.example.test." {
			t.Errorf("after restart: change %s %s, want only the MX host's", c.Name, c.Type)
		}
	}
}

func TestReportFreshness(t *testing.T) {
	ctx := context.Background()
	s, r := world(t)
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	w, err := dnswatch.New(config(), dnswatch.Options{Resolver: r, MaxAge: time.Minute, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	before := s.Queries()
	rep, ok := w.Report(ctx, "example.test")
	if !ok || s.Queries() == before {
		t.Fatal("first Report did not check")
	}
	// Reports are stamped by the checks' own clock: use it as "now".
	mu.Lock()
	now = rep.CheckedAt
	mu.Unlock()
	before = s.Queries()
	if again, _ := w.Report(ctx, "example.test"); !again.CheckedAt.Equal(rep.CheckedAt) || s.Queries() != before {
		t.Error("a report younger than MaxAge was not reused")
	}
	w.Learn("example.test", "s2026", "")
	if again, _ := w.Report(ctx, "example.test"); s.Queries() == before || len(again.Has("dkim.key_missing")) != 1 {
		t.Errorf("a learned selector did not trigger a fresh check: %v", again.Findings)
	}
	before = s.Queries()
	advance(2 * time.Minute)
	if _, _ = w.Report(ctx, "example.test"); s.Queries() == before {
		t.Error("a report older than MaxAge was reused")
	}
	if _, ok := w.Report(ctx, "unknown.test"); ok {
		t.Error("report for a domain not in the config")
	}
}

// TestLearnKeepsNewestSourceIPs: delivering addresses learned past the cap
// replace the oldest, so a sender with many outbound IPs does not make
// every check longer.
func TestLearnKeepsNewestSourceIPs(t *testing.T) {
	_, r := world(t)
	w, err := dnswatch.New(config(), dnswatch.Options{Resolver: r})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 40; i++ {
		w.Learn("example.test", "", fmt.Sprintf("198.51.100.%d", i))
	}
	rep := w.Check(context.Background(), "example.test").Report
	var ips []string
	for _, f := range rep.Has("spf.source_not_authorised") {
		ips = append(ips, strings.SplitN(f.Data, ":", 2)[0])
	}
	if len(ips) != 32 || ips[0] != "198.51.100.9" || ips[31] != "198.51.100.40" {
		t.Errorf("source IPs checked = %v, want the newest 32 (198.51.100.9 … 198.51.100.40)", ips)
	}
}

func TestRunChecksAtStartAndStops(t *testing.T) {
	_, r := world(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.OpenSQLite(ctx, t.TempDir()+"/db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := config()
	cfg.DNSChecks.Schedule = "@every 1h"
	w, err := dnswatch.New(cfg, dnswatch.Options{Resolver: r, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	for i := 0; ; i++ {
		if _, ok, _ := st.LatestDNSSnapshot(ctx, "example.test"); ok {
			break
		}
		if i > 600 {
			t.Fatal("no snapshot stored by Run within a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	bad := config()
	bad.DNSChecks.Schedule = "sometimes"
	if _, err := dnswatch.New(bad, dnswatch.Options{Resolver: r}); err == nil || !strings.Contains(err.Error(), "dns_checks.schedule") {
		t.Errorf("invalid schedule: err = %v", err)
	}
}

func TestEnrichHealthyNeedsNoDNS(t *testing.T) {
	s, r := world(t)
	// The clock runs 11s ahead of the checks' own: a report that does not
	// explain a failure is old enough to be checked again.
	w, err := dnswatch.New(config(), dnswatch.Options{Resolver: r, Now: func() time.Time { return time.Now().Add(11 * time.Second) }})
	if err != nil {
		t.Fatal(err)
	}
	a := &attempt.Attempt{Sender: "relay", Mailbox: "gmail", Provider: "gmail", Outcome: attempt.OutcomeInbox, Diagnosis: "stale",
		Verdicts: verify.Verdicts{Trusted: true, SPF: "pass", DKIM: "pass", DMARC: "pass"}}
	w.Enrich(context.Background(), a)
	if a.Diagnosis != "" || s.Queries() != 0 {
		t.Errorf("healthy: diagnosis %q after %d queries", a.Diagnosis, s.Queries())
	}
	w.CheckAll(context.Background()) // the scheduled check, before the incident
	a.Verdicts.DMARC = "fail"
	s.Remove("_dmarc.example.test.", dns.TypeTXT)
	w.Enrich(context.Background(), a)
	t.Logf("diagnosis: %s", a.Diagnosis)
	for _, want := range []string{"dmarc=fail at gmail", "_dmarc.example.test does not exist", "_dmarc.example.test TXT no longer exists", `before: "v=DMARC1; p=reject"`} {
		if !strings.Contains(a.Diagnosis, want) {
			t.Errorf("dmarc=fail: diagnosis %q lacks %q", a.Diagnosis, want)
		}
	}
}
