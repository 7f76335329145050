package pipeline_test

// Game days: the real lab world, the real engine on a 2-second schedule and
// the whole reports pipeline (rounds, failover, alerts with the outbox,
// SLOs), with a webhook receiver on loopback that checks every signature.
// Timings are measured and logged in probe rounds; assertions are about
// order and eventual state, with generous bounds.

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/probe"
	"github.com/otpprobe/otpprobe/reports/alert"
	"github.com/otpprobe/otpprobe/reports/failover"
	"github.com/otpprobe/otpprobe/reports/pipeline"
	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
)

const (
	interval = 2 * time.Second // the probe's schedule in the game days
	secret   = "game-day-webhook-secret-0123456789"
)

// hookReceiver is the test webhook endpoint: it verifies each request's
// signature and timestamp and records the events.
type hookReceiver struct {
	t   *testing.T
	srv *httptest.Server

	down atomic.Bool // answer 503, as a receiver in an outage would

	mu          sync.Mutex
	alerts      []alert.Alert
	transitions []failover.Transition
	badSigs     int
	refused     int
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{t: t}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := alert.Verify([]byte(secret), r.Header.Get(alert.HeaderTimestamp), r.Header.Get(alert.HeaderSignature),
		body, time.Now(), 5*time.Minute); err != nil {
		h.badSigs++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if h.down.Load() {
		h.refused++
		http.Error(w, "receiver down", http.StatusServiceUnavailable)
		return
	}
	switch r.Header.Get(alert.HeaderEvent) {
	case alert.KindAlert:
		var e alert.Event
		if err := json.Unmarshal(body, &e); err != nil || e.Alert == nil {
			h.t.Errorf("undecodable alert event: %v: %s", err, body)
			return
		}
		h.alerts = append(h.alerts, *e.Alert)
	case alert.KindTransition:
		var tr failover.Transition
		if err := json.Unmarshal(body, &tr); err != nil {
			h.t.Errorf("undecodable transition: %v: %s", err, body)
			return
		}
		h.transitions = append(h.transitions, tr)
	default:
		h.t.Errorf("webhook event header %q", r.Header.Get(alert.HeaderEvent))
	}
}

// alert returns the first received alert matching name, status and label.
func (h *hookReceiver) alert(name, status, label, value string) (alert.Alert, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range h.alerts {
		if a.Name == name && a.Status == status && a.Labels[label] == value {
			return a, true
		}
	}
	return alert.Alert{}, false
}

func (h *hookReceiver) count(name, status string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, a := range h.alerts {
		if a.Name == name && a.Status == status {
			n++
		}
	}
	return n
}

func (h *hookReceiver) transitionTo(state string) (failover.Transition, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range h.transitions {
		if t.ToState == state {
			return t, true
		}
	}
	return failover.Transition{}, false
}

func (h *hookReceiver) checkSignatures(t *testing.T) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.badSigs > 0 {
		t.Errorf("%d webhook requests failed signature verification", h.badSigs)
	}
}

// gameDay is a lab world with a generated config pointing at it.
type gameDay struct {
	t     *testing.T
	world *lab.World
	cfg   *targets.Config
	hook  *hookReceiver
}

func newGameDay(t *testing.T) *gameDay {
	if testing.Short() {
		t.Skip("game days run the lab for up to a minute each")
	}
	ctx := context.Background()
	dir := t.TempDir()
	w, err := lab.Start(ctx, lab.Options{Dir: dir, LossSource: rand.NewPCG(2026, 6)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	hook := newHookReceiver(t)
	path, err := w.Endpoints().WriteConfig(lab.ConfigOptions{Dir: dir, Schedule: "@every 2s",
		Deadline: 7 * time.Second, LatencySLO: 4 * time.Second, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	addWebhook(t, path, hook.srv.URL+"/otpprobe")
	cfg, err := targets.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Routes) != 1 || cfg.Routes[0].Name != "otp" {
		t.Fatalf("the lab config has no route otp: %+v", cfg.Routes)
	}
	return &gameDay{t: t, world: w, cfg: cfg, hook: hook}
}

// addWebhook adds the test receiver to the generated config, for alerts and
// the route's transitions.
func addWebhook(t *testing.T, path, url string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(filepath.Dir(path), "webhook.secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc["alerts"] = map[string]any{"webhooks": []any{map[string]any{"name": "test", "url": url, "secret_file": "webhook.secret"}}}
	doc["routes"].([]any)[0].(map[string]any)["webhooks"] = []any{"test"}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// agent is one running otpprobe: store, engine, scheduler and pipeline.
type agent struct {
	st     *store.SQLite
	eng    *probe.Engine
	pl     *pipeline.Pipeline
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

func (g *gameDay) start() *agent {
	t := g.t
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.OpenSQLite(ctx, g.cfg.Store.Path)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := pipeline.New(ctx, g.cfg, pipeline.Options{Store: st, RetryBase: 200 * time.Millisecond, RetryMax: time.Second, Poll: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := probe.New(g.cfg, probe.Options{Store: st, Observers: []func(*attempt.Attempt){pl.Observe}, RoundStarted: []func(*attempt.Round){pl.RoundStarted}})
	if err != nil {
		t.Fatal(err)
	}
	sched, err := probe.NewScheduler(eng, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &agent{st: st, eng: eng, pl: pl, cancel: cancel}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	a.wg.Add(2)
	go func() { defer a.wg.Done(); pl.Run(ctx) }()
	go func() { defer a.wg.Done(); sched.Start(ctx) }()
	t.Cleanup(a.stop)
	return a
}

func (a *agent) stop() {
	a.once.Do(func() {
		a.cancel()
		a.wg.Wait()
		time.Sleep(300 * time.Millisecond) // let watchers and the sweeper see the cancellation before the store closes
		a.st.Close()
	})
}

func (a *agent) decision() failover.Decision {
	d, _ := a.pl.Failover.Decision("otp")
	return d
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: still waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Now()
}

// healthyRounds waits until both senders delivered to every provider in
// the inbox at least twice, so that the backup is known healthy.
func (g *gameDay) warmUp(a *agent) {
	waitFor(g.t, 40*time.Second, "two healthy rounds of both senders", func() bool {
		for _, s := range []string{lab.SenderM365, lab.SenderBackup} {
			as, err := a.st.List(context.Background(), attempt.Filter{Sender: s, Outcome: attempt.OutcomeInbox})
			if err != nil || len(as) < 6 {
				return false
			}
		}
		return true
	})
	if d := a.decision(); d.State != failover.StatePrimary || d.ActiveSender != lab.SenderM365 {
		g.t.Fatalf("healthy world: route %+v, want primary on m365", d)
	}
}

func (g *gameDay) apply(names ...string) time.Time {
	for _, n := range names {
		if err := g.world.Apply(n); err != nil {
			g.t.Fatal(err)
		}
	}
	return time.Now()
}

func rounds(d time.Duration) float64 {
	return float64(d.Round(100*time.Millisecond)) / float64(interval)
}

// states lists the route's stored transitions as "from->to".
func states(t *testing.T, st *store.SQLite) []string {
	trs, err := st.Transitions(context.Background(), "otp", time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tr := range trs {
		out = append(out, tr.FromState+"->"+tr.ToState)
	}
	return out
}

// inOrder reports whether want appears in got as a subsequence.
func inOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

var failoverCycle = []string{"primary->failing_over", "failing_over->backup", "backup->recovering", "recovering->primary"}

// Game day 1: the 2023 Microsoft 365 incident (SPF include SERVFAIL and a
// missing DKIM key). The route moves to the backup, a signed firing alert
// with a diagnosis reaches the webhook; after the fix the route returns to
// m365 only after the hysteresis, and a resolved notification arrives.
func TestGameDayFailoverAndFailBack(t *testing.T) {
	g := newGameDay(t)
	a := g.start()
	g.warmUp(a)
	route := g.cfg.Routes[0]

	fault := g.apply("m365-spf-and-dkim-broken")
	switched := waitFor(t, 60*time.Second, "the route to move to the backup", func() bool {
		return a.decision().ActiveSender == lab.SenderBackup
	})
	d := a.decision()
	t.Logf("time to failover: %v = %.1f probe intervals (trigger: %d unhealthy rounds, deadline %v = %.1f intervals)",
		switched.Sub(fault).Round(time.Millisecond), rounds(switched.Sub(fault)), route.UnhealthyRounds,
		g.cfg.Probes[0].Deadline, rounds(g.cfg.Probes[0].Deadline))
	t.Logf("decision: state=%s reason=%q diagnosis=%q evidence=%d", d.State, d.Reason, d.Diagnosis, len(d.Evidence))
	if d.State != failover.StateBackup || d.Diagnosis == "" || len(d.Evidence) == 0 {
		t.Errorf("decision after failover: %+v, want state backup with diagnosis and evidence", d)
	}

	var fired alert.Alert
	waitFor(t, 30*time.Second, "a firing RouteFailedOver alert at the webhook", func() bool {
		var ok bool
		fired, ok = g.hook.alert(alert.RouteFailedOver, alert.Firing, "route", "otp")
		return ok
	})
	t.Logf("firing alert: %s; diagnosis: %s", fired.Summary, fired.Diagnosis)
	if fired.Diagnosis == "" || len(fired.Evidence) == 0 {
		t.Errorf("firing alert without diagnosis or evidence: %+v", fired)
	}
	if !strings.Contains(fired.Diagnosis, "m365") {
		t.Errorf("diagnosis %q does not name the failing sender", fired.Diagnosis)
	}
	waitFor(t, 30*time.Second, "the transition to backup at the webhook", func() bool {
		tr, ok := g.hook.transitionTo(failover.StateBackup)
		return ok && tr.ToSender == lab.SenderBackup
	})

	fixed := g.apply(lab.Healthy)
	back := waitFor(t, 90*time.Second, "the route to return to m365", func() bool {
		return a.decision().ActiveSender == lab.SenderM365
	})
	t.Logf("time to fail back: %v = %.1f probe intervals after the fix (healthy rounds needed: %d, min hold %v = %.1f intervals after the failover)",
		back.Sub(fixed).Round(time.Millisecond), rounds(back.Sub(fixed)), route.HealthyRounds, route.MinHold, rounds(route.MinHold))
	// The decisions' own times (since: when the active sender became
	// active) show the hysteresis exactly, whatever the polling delay.
	final := a.decision()
	wentBackup, err1 := time.Parse(time.RFC3339Nano, d.Since)
	wentPrimary, err2 := time.Parse(time.RFC3339Nano, final.Since)
	if err1 != nil || err2 != nil {
		t.Fatalf("since: %v %v", err1, err2)
	}
	t.Logf("fail-back decision: %s", final.Reason)
	if held := wentPrimary.Sub(wentBackup); held < route.MinHold {
		t.Errorf("failed back after %v on the backup, before the minimum hold %v", held, route.MinHold)
	}
	waitFor(t, 30*time.Second, "a resolved RouteFailedOver notification", func() bool {
		_, ok := g.hook.alert(alert.RouteFailedOver, alert.Resolved, "route", "otp")
		return ok
	})
	got := states(t, a.st)
	t.Logf("transitions: %v", got)
	if !inOrder(got, failoverCycle) {
		t.Errorf("transitions %v, want the cycle %v in order", got, failoverCycle)
	}
	g.hook.checkSignatures(t)
}

// Game day 2: the flaky scenario loses 10% of M365's messages for many
// rounds. Single losses must not move the route: zero failovers.
func TestGameDayFlakyDoesNotFlap(t *testing.T) {
	g := newGameDay(t)
	a := g.start()
	g.warmUp(a)
	start := g.apply("flaky")
	time.Sleep(30 * time.Second) // 15 rounds, 45 M365 messages
	g.apply(lab.Healthy)
	time.Sleep(g.cfg.Probes[0].Deadline + time.Second)

	as, err := a.st.List(context.Background(), attempt.Filter{From: start, Sender: lab.SenderM365})
	if err != nil {
		t.Fatal(err)
	}
	lost := 0
	for _, at := range as {
		if at.Outcome == attempt.OutcomeLost {
			lost++
		}
	}
	got := states(t, a.st)
	t.Logf("flaky: %d m365 attempts in %.0f rounds, %d lost; transitions %v", len(as), rounds(time.Since(start)), lost, got)
	if lost == 0 {
		t.Errorf("flaky lost none of %d messages; the game day tested nothing", len(as))
	}
	for _, s := range got {
		if strings.HasSuffix(s, "->backup") {
			t.Errorf("flaky caused a failover: %v", got)
		}
	}
	if d := a.decision(); d.ActiveSender != lab.SenderM365 {
		t.Errorf("route after flaky: %+v", d)
	}
	if n := g.hook.count(alert.RouteFailedOver, alert.Firing); n != 0 {
		t.Errorf("%d failover alerts during flaky", n)
	}
	g.hook.checkSignatures(t)
}

// Game day 3: both senders down at once. The route must not switch to a
// dead backup (it stays on m365, failing over), and a SenderDown alert
// fires for each.
func TestGameDayNoFailoverToDeadBackup(t *testing.T) {
	g := newGameDay(t)
	a := g.start()
	g.warmUp(a)
	g.apply("m365-outage", "backup-outage")
	for _, s := range []string{lab.SenderM365, lab.SenderBackup} {
		waitFor(t, 45*time.Second, "SenderDown firing for "+s, func() bool {
			_, ok := g.hook.alert(alert.SenderDown, alert.Firing, "sender", s)
			return ok
		})
	}
	waitFor(t, 30*time.Second, "the route to be failing over", func() bool {
		return a.decision().State == failover.StateFailingOver
	})
	time.Sleep(3 * interval) // a few more rounds with both down
	d := a.decision()
	t.Logf("both down: route %s on %s: %s", d.State, d.ActiveSender, d.Reason)
	if d.ActiveSender != lab.SenderM365 || d.State != failover.StateFailingOver {
		t.Errorf("route with both senders down: %+v, want failing_over on m365", d)
	}
	if got := states(t, a.st); slices.ContainsFunc(got, func(s string) bool { return strings.HasSuffix(s, "->backup") }) {
		t.Errorf("switched to a dead backup: %v", got)
	}
	down, _ := g.hook.alert(alert.SenderDown, alert.Firing, "sender", lab.SenderBackup)
	t.Logf("backup down: %s; diagnosis: %s", down.Summary, down.Diagnosis)
	if down.Diagnosis == "" || len(down.Evidence) == 0 {
		t.Errorf("SenderDown without diagnosis or evidence: %+v", down)
	}

	g.apply(lab.Healthy)
	waitFor(t, 45*time.Second, "the route back on primary and both SenderDown resolved", func() bool {
		_, m := g.hook.alert(alert.SenderDown, alert.Resolved, "sender", lab.SenderM365)
		_, b := g.hook.alert(alert.SenderDown, alert.Resolved, "sender", lab.SenderBackup)
		return m && b && a.decision().State == failover.StatePrimary
	})
	g.hook.checkSignatures(t)
}

// Game day 4: game day 1 with a restart in the middle, while the webhook
// receiver is down. The route state and the undelivered notifications
// survive the restart; the alert is not notified twice.
func TestGameDayRestartKeepsStateAndNotifications(t *testing.T) {
	g := newGameDay(t)
	a := g.start()
	g.warmUp(a)
	g.hook.down.Store(true)
	fault := g.apply("m365-spf-and-dkim-broken")
	switched := waitFor(t, 60*time.Second, "the route to move to the backup", func() bool {
		return a.decision().ActiveSender == lab.SenderBackup
	})
	t.Logf("time to failover: %.1f probe intervals", rounds(switched.Sub(fault)))
	waitFor(t, 10*time.Second, "a refused delivery", func() bool {
		g.hook.mu.Lock()
		defer g.hook.mu.Unlock()
		return g.hook.refused > 0
	})
	a.stop()

	// Between the two runs, the store holds the decision and the queue.
	st, err := store.OpenSQLite(context.Background(), g.cfg.Store.Path)
	if err != nil {
		t.Fatal(err)
	}
	rs, ok, err := st.Route(context.Background(), "otp")
	if err != nil || !ok || rs.ActiveSender != lab.SenderBackup {
		t.Fatalf("stored route after stop: %+v %v %v", rs, ok, err)
	}
	queued, err := st.UndeliveredCount(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	t.Logf("stopped with the route on %s (%s) and %d notifications undelivered", rs.ActiveSender, rs.State, queued)
	if queued == 0 {
		t.Fatal("no undelivered notifications across the restart; the receiver was down")
	}

	g.hook.down.Store(false)
	b := g.start()
	if d := b.decision(); d.ActiveSender != lab.SenderBackup {
		t.Fatalf("after restart: route %+v, want still on backup", d)
	}
	waitFor(t, 30*time.Second, "the queued firing alert and transition delivered after the restart", func() bool {
		_, fired := g.hook.alert(alert.RouteFailedOver, alert.Firing, "route", "otp")
		_, moved := g.hook.transitionTo(failover.StateBackup)
		return fired && moved
	})
	fixed := g.apply(lab.Healthy)
	back := waitFor(t, 90*time.Second, "the route to return to m365", func() bool {
		return b.decision().ActiveSender == lab.SenderM365
	})
	t.Logf("time to fail back after the restart: %.1f probe intervals after the fix", rounds(back.Sub(fixed)))
	waitFor(t, 30*time.Second, "a resolved RouteFailedOver notification", func() bool {
		_, ok := g.hook.alert(alert.RouteFailedOver, alert.Resolved, "route", "otp")
		return ok
	})
	if n := g.hook.count(alert.RouteFailedOver, alert.Firing); n != 1 {
		t.Errorf("RouteFailedOver notified firing %d times, want once across the restart", n)
	}
	got := states(t, b.st)
	t.Logf("transitions: %v", got)
	if !inOrder(got, failoverCycle) {
		t.Errorf("transitions %v, want the cycle %v in order", got, failoverCycle)
	}
	g.hook.checkSignatures(t)
}
