package dnswatch_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/probe"
	"github.com/otpprobe/otpprobe/reports/dnswatch"
	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
)

// alwaysLose makes the flaky scenario lose every message, so its test
// does not depend on chance.
type alwaysLose struct{}

func (alwaysLose) Uint64() uint64 { return 0 }

// expectation is what one scenario's round must diagnose: the sender
// probed, and for each mailbox the phrases its diagnosis must contain
// (mailboxes not listed must be healthy, with an empty diagnosis).
type expectation struct {
	sender string
	want   map[string][]string
}

func all(phrases ...string) map[string][]string {
	return map[string][]string{lab.ProviderGmail: phrases, lab.ProviderYahoo: phrases, lab.ProviderOutlook: phrases}
}

var scenarioDiagnoses = map[string][]expectation{
	lab.Healthy: {{lab.SenderM365, nil}, {lab.SenderBackup, nil}},
	"m365-spf-include-servfail": {
		{lab.SenderM365, all("spf=temperror", lab.M365SPFInclude, "SERVFAIL")},
		// The M365 include comes first in the record: evaluating SPF for
		// the backup's address reaches it too.
		{lab.SenderBackup, all("spf=temperror", lab.M365SPFInclude, "SERVFAIL")},
	},
	"m365-dkim-txt-missing":    {{lab.SenderM365, all("selector1._domainkey."+lab.CustomerDomain+" is a CNAME to", "which has no TXT record")}},
	"m365-spf-and-dkim-broken": {{lab.SenderM365, all(lab.M365SPFInclude, "SERVFAIL", "selector1._domainkey."+lab.CustomerDomain+" is a CNAME to")}},
	"m365-dns-records-removed": {{lab.SenderM365, all(lab.M365IP, "which delivered our mail")}},
	"dns-zone-broken":          {{lab.SenderM365, all(lab.M365IP, "which delivered our mail", "SPF fail")}, {lab.SenderBackup, all(lab.BackupIP, "which delivered our mail", "SPF fail")}},
	"dmarc-record-removed":     {{lab.SenderM365, all("dmarc=none", "_dmarc."+lab.CustomerDomain, "does not exist")}},
	"spf-too-many-lookups": {
		{lab.SenderM365, all("spf=permerror", "SPF needs 12 DNS lookups (limit 10)")},
		{lab.SenderBackup, all("spf=permerror", "SPF needs 12 DNS lookups (limit 10)")},
	},
	"m365-outage":         {{lab.SenderM365, all("submission server of m365", "421 4.3.2")}},
	"m365-outage-refused": {{lab.SenderM365, all("submission server of m365 refused the connection")}},
	"backup-outage":       {{lab.SenderBackup, all("submission server of backup refused the connection")}},
	"imap-outage": {
		{lab.SenderM365, map[string][]string{lab.ProviderGmail: {"Not seen because otpprobe could not watch gmail", "no IMAP connection"}}},
		{lab.SenderBackup, map[string][]string{lab.ProviderGmail: {"Not seen because otpprobe could not watch gmail", "no IMAP connection"}}},
	},
	"provider-greylist": {{lab.SenderBackup, map[string][]string{lab.ProviderOutlook: {"accepted it only about", "deferred", "greylisting"}}}},
	"provider-delay":    {{lab.SenderM365, map[string][]string{lab.ProviderYahoo: {"held inside the provider"}}}},
	"provider-drop":     {{lab.SenderBackup, map[string][]string{lab.ProviderGmail: {"Accepted by backup", "never delivered", "no bounce"}}}},
	"flaky":             {{lab.SenderM365, all("Accepted by m365", "never delivered")}},
}

// notDNS are the scenarios about the prober's own credentials: the engine
// here holds its OAuth2 tokens across scenarios, so they are tested where
// the token sources are (the lab's identity scenario table), not here.
var notDNS = map[string]bool{"m365-basic-auth-disabled": true, "oauth-secret-expired": true, "oauth-refresh-revoked": true, "graph-throttled": true}

// TestScenarioDiagnoses runs the engine against the lab world with the
// watcher as its Enricher and checks, for every lab scenario, the
// diagnosis of each attempt. One sender per round: each watched folder
// then gets one canary at a time.
func TestScenarioDiagnoses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the lab world")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	w, err := lab.Start(ctx, lab.Options{Dir: dir, RetryInterval: 2 * time.Second, ProviderDelay: 2500 * time.Millisecond, LossSource: alwaysLose{}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ep := w.Endpoints()
	// Latency SLO 1.5s: the greylist retry (2s) and the provider delay (2.5s)
	// are late; deadline 4s: both still arrive, dropped mail is lost.
	path, err := ep.WriteConfig(lab.ConfigOptions{Dir: dir, Deadline: 4 * time.Second, LatencySLO: 1500 * time.Millisecond, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := targets.Load(path)
	if err != nil {
		t.Fatal(err)
	}

	// One watcher for the whole run, as in a long-running prober: the
	// healthy scenario (first) teaches it each sender's selector and relay.
	st, dw := newWatcher(t, ctx, cfg)
	for _, sc := range lab.Scenarios() {
		if notDNS[sc.Name] {
			continue
		}
		exps, ok := scenarioDiagnoses[sc.Name]
		if !ok {
			t.Errorf("scenario %s has no expected diagnosis in this test", sc.Name)
			continue
		}
		t.Run(sc.Name, func(t *testing.T) {
			if err := w.Reset(); err != nil {
				t.Fatal(err)
			}
			if err := w.Apply(sc.Name); err != nil {
				t.Fatal(err)
			}
			for _, exp := range exps {
				for _, a := range runRoundWith(t, ctx, cfg, exp.sender, st, dw) {
					want := exp.want[a.Provider]
					if len(want) == 0 {
						if a.Diagnosis != "" {
							t.Errorf("%s→%s (%s): diagnosis %q, want none (healthy)", a.Sender, a.Mailbox, a.Outcome, a.Diagnosis)
						}
						continue
					}
					for _, phrase := range want {
						if !strings.Contains(a.Diagnosis, phrase) {
							t.Errorf("%s→%s (%s late=%v spf=%s dkim=%s dmarc=%s): diagnosis %q lacks %q",
								a.Sender, a.Mailbox, a.Outcome, a.Late, a.Verdicts.SPF, a.Verdicts.DKIM, a.Verdicts.DMARC, a.Diagnosis, phrase)
						}
					}
				}
			}
		})
	}
}

// newWatcher opens a store and a watcher over it for base's domains.
func newWatcher(t *testing.T, ctx context.Context, base *targets.Config) (*store.SQLite, *dnswatch.Watcher) {
	t.Helper()
	st, err := store.OpenSQLite(ctx, t.TempDir()+"/otpprobe.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r, err := dnswatch.NewResolver(base.DNSChecks)
	if err != nil {
		t.Fatal(err)
	}
	// MaxAge 1ns: every diagnosis takes a fresh check, as the zone was
	// just changed under a scenario.
	dw, err := dnswatch.New(base, dnswatch.Options{Resolver: r, Store: st, MaxAge: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	return st, dw
}

// runRoundWith sends one round from sender to every mailbox through a
// fresh engine whose Enricher is dw (which keeps what earlier rounds
// taught it), and returns the decided attempts as stored in st.
func runRoundWith(t *testing.T, ctx context.Context, base *targets.Config, sender string, st *store.SQLite, dw *dnswatch.Watcher) []*attempt.Attempt {
	t.Helper()
	cfg := *base
	cfg.Probes = []targets.Probe{base.Probes[0]}
	cfg.Probes[0].Senders = []string{sender}
	ectx, stop := context.WithCancel(ctx)
	defer stop()
	eng, err := probe.New(&cfg, probe.Options{Store: st, Enrichers: []func(context.Context, *attempt.Attempt){dw.Enrich}, SweepEvery: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ectx); err != nil {
		t.Fatal(err)
	}
	round, err := eng.Round(ectx, cfg.Probes[0].Name)
	attempts := round.Attempts
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(attempts))
	for i, a := range attempts {
		ids[i] = a.ID
	}
	if err := eng.Wait(ectx, ids...); err != nil {
		t.Fatal(err)
	}
	var out []*attempt.Attempt
	for _, id := range ids {
		a, err := st.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

// In the 2023-style incident, M365's canaries bounce at gmail and yahoo.
// A watcher that saw healthy canaries before knows their selector and
// relay: the bounce names the DSN and both broken records, the dangling
// selector and the SPF include that stopped answering.
func TestBouncedNamesEveryBrokenRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the lab world")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	w, err := lab.Start(ctx, lab.Options{Dir: dir, RetryInterval: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	path, err := w.Endpoints().WriteConfig(lab.ConfigOptions{Dir: dir, Deadline: 10 * time.Second, LatencySLO: 5 * time.Second, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := targets.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	st, dw := newWatcher(t, ctx, cfg)
	for _, a := range runRoundWith(t, ctx, cfg, lab.SenderM365, st, dw) {
		if a.Outcome != attempt.OutcomeInbox {
			t.Fatalf("healthy round: %s→%s %s (%s)", a.Sender, a.Mailbox, a.Outcome, a.Diagnosis)
		}
	}
	dw.CheckAll(ctx) // the scheduled check before the incident
	if err := w.Apply("m365-spf-and-dkim-broken"); err != nil {
		t.Fatal(err)
	}
	bounced := 0
	for _, a := range runRoundWith(t, ctx, cfg, lab.SenderM365, st, dw) {
		if a.Outcome != attempt.OutcomeBounced {
			continue
		}
		bounced++
		for _, phrase := range []string{
			a.Mailbox + " bounced the canary (DSN Status 5.7.",
			lab.M365SPFInclude, "SERVFAIL",
			"selector1._domainkey." + lab.CustomerDomain + " is a CNAME to", "which has no TXT record",
			"TXT changed at", "TXT no longer exists", // the check before the incident saw them
		} {
			if !strings.Contains(a.Diagnosis, phrase) {
				t.Errorf("%s→%s: diagnosis %q lacks %q", a.Sender, a.Mailbox, a.Diagnosis, phrase)
			}
		}
		t.Logf("%s: %s", a.Mailbox, a.Diagnosis)
	}
	if bounced < 2 {
		t.Errorf("%d bounced attempts, want gmail's and yahoo's", bounced)
	}
}
