package slo_test

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/probe"
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
  - {name: yahoo, provider: yahoo, address: seed@yahoo.example, auth: {username: u, password: p}}
probes:
  - {name: otp, schedule: "@every 1m", senders: [m365, backup], mailboxes: [gmail, yahoo]}
routes:
  - {name: otp, primary: m365, backups: [backup]}
slos:
  - {name: route, route: otp, objective: 99, latency: 10s, window: 24h}
  - {name: m365-gmail, sender: m365, provider: gmail, objective: 99, latency: 10s, window: 24h}
`

type fixture struct {
	st    *store.SQLite
	now   time.Time
	n     int
	agent string // the agent of the attempts stored next
}

// attempt stores a decided attempt created ago before now.
func (fx *fixture) attempt(t *testing.T, ago time.Duration, sender, provider string, outcome attempt.Outcome, latency time.Duration) {
	t.Helper()
	a, err := probe.NewAttempt(fx.now.Add(-ago), "otp", sender, "otp@example.com", provider, provider, time.Minute, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	a.Outcome, a.SubmittedAt, a.Agent = outcome, a.CreatedAt, fx.agent
	if outcome == attempt.OutcomeInbox || outcome == attempt.OutcomeSpam {
		a.SeenAt = a.CreatedAt.Add(latency)
	}
	if err := fx.st.Create(context.Background(), a); err != nil {
		t.Fatal(err)
	}
}

func setup(t *testing.T) (*fixture, *targets.Config) {
	cfg, err := targets.Parse([]byte(config), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "otpprobe.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &fixture{st: st, now: time.Now().UTC().Truncate(time.Millisecond)}, cfg
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// TestRouteFollowsActiveSender: a route's SLI counts the attempts of the
// sender that was active when each was made; a sender's SLI counts all of
// its own.
func TestRouteFollowsActiveSender(t *testing.T) {
	fx, cfg := setup(t)
	// Two hours ago to one hour ago m365 was active and failing; then the
	// route failed over to the backup, which delivered.
	for m := 61; m <= 120; m += 10 { // 6 m365 attempts, all lost
		fx.attempt(t, time.Duration(m)*time.Minute, "m365", "gmail", attempt.OutcomeLost, 0)
		fx.attempt(t, time.Duration(m)*time.Minute, "backup", "gmail", attempt.OutcomeInbox, time.Second)
	}
	for m := 1; m <= 59; m += 10 { // 6 each while the backup was active
		fx.attempt(t, time.Duration(m)*time.Minute, "m365", "gmail", attempt.OutcomeLost, 0)
		fx.attempt(t, time.Duration(m)*time.Minute, "backup", "gmail", attempt.OutcomeInbox, time.Second)
	}
	fx.attempt(t, 2*time.Minute, "backup", "yahoo", attempt.OutcomeInbox, time.Minute) // late: not good
	st := store.RouteState{Route: "otp", ActiveSender: "backup", State: "backup", Since: fx.now.Add(-time.Hour)}
	tr := store.RouteTransition{Route: "otp", At: fx.now.Add(-time.Hour), FromState: "failing_over", ToState: "backup", FromSender: "m365", ToSender: "backup"}
	if err := fx.st.SaveRoute(context.Background(), &st, &tr, nil); err != nil {
		t.Fatal(err)
	}
	e := slo.New(cfg, slo.Options{Store: fx.st, Now: func() time.Time { return fx.now }, Active: func(string) string { return "backup" }})
	sts, err := e.Evaluate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	route, sender := sts[0], sts[1]
	// Route: 6 lost m365 attempts before the switch + 7 backup ones after.
	if route.Total != 13 || route.Good != 6 {
		t.Errorf("route good/total %d/%d, want 6/13", route.Good, route.Total)
	}
	if !near(route.BurnRates["1h"], (1.0/7)/0.01) {
		t.Errorf("route 1h burn %v, want %v (1 late of 7, budget 1%%)", route.BurnRates["1h"], (1.0/7)/0.01)
	}
	if sender.Total != 12 || sender.Good != 0 || sender.SLI != 0 || !near(sender.ErrorBudgetRemaining, 1-100) {
		t.Errorf("m365→gmail %+v", sender)
	}
	// The route burns 50x over 5m but 14.3x over 1h: below the page's 14.4.
	if !sender.FastBurn() || route.FastBurn() {
		t.Errorf("fast burn: sender %v route %v (%v)", sender.FastBurn(), route.FastBurn(), route.BurnRates)
	}
	if burning, why := e.FastBurn("otp"); burning != route.FastBurn() || (burning && why == "") {
		t.Errorf("FastBurn(otp) = %v %q", burning, why)
	}
}

func TestNoAttemptsYet(t *testing.T) {
	fx, cfg := setup(t)
	sts, err := slo.New(cfg, slo.Options{Store: fx.st}).Evaluate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sts {
		if s.Total != 0 || s.SLI != 0 || s.ErrorBudgetRemaining != 1 || s.FastBurn() || len(s.Alerts) != 3 {
			t.Errorf("%+v", s)
		}
	}
}

// failingStore is a store that cannot be read.
type failingStore struct{}

func (failingStore) Tally(context.Context, store.TallyFilter) (int64, int64, error) {
	return 0, 0, errors.New("database is locked")
}

func (failingStore) TallyAgents(context.Context, store.TallyFilter) ([]store.AgentTally, error) {
	return nil, errors.New("database is locked")
}

func (failingStore) Transitions(context.Context, string, time.Time, int) ([]store.RouteTransition, error) {
	return nil, errors.New("database is locked")
}

// TestRunLogsFailedEvaluations: an evaluation Run cannot make is logged,
// not dropped without a trace, and reports nothing.
func TestRunLogsFailedEvaluations(t *testing.T) {
	_, cfg := setup(t)
	logs := &lockedBuffer{}
	e := slo.New(cfg, slo.Options{Store: failingStore{}, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	var reported atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.Run(ctx, time.Hour, func(context.Context, []slo.Status) { reported.Store(true) })
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "database is locked") {
		if time.Now().After(deadline) {
			t.Fatalf("the failed evaluation was not logged: %q", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if reported.Load() {
		t.Error("a failed evaluation was reported")
	}
}

// lockedBuffer is a log destination safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPerAgent: an SLO counts every agent's attempts, and lists each
// agent's own count over the window (the agent whose path to a sender is
// broken stands out).
func TestPerAgent(t *testing.T) {
	fx, cfg := setup(t)
	for m := 1; m <= 30; m += 10 { // 3 rounds each
		fx.agent = "eu"
		fx.attempt(t, time.Duration(m)*time.Minute, "m365", "gmail", attempt.OutcomeSendFailed, 0)
		fx.agent = "us"
		fx.attempt(t, time.Duration(m)*time.Minute, "m365", "gmail", attempt.OutcomeInbox, time.Second)
	}
	e := slo.New(cfg, slo.Options{Store: fx.st, Now: func() time.Time { return fx.now }})
	sts, err := e.Evaluate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sts { // the route (on m365 throughout) and m365→gmail
		if s.Total != 6 || s.Good != 3 || len(s.Agents) != 2 {
			t.Fatalf("%s: %d/%d agents %+v", s.Name, s.Good, s.Total, s.Agents)
		}
		eu, us := s.Agents[0], s.Agents[1]
		if eu.Agent != "eu" || eu.Total != 3 || eu.Good != 0 || eu.SLI != 0 || !near(eu.ErrorBudgetRemaining, 1-100) ||
			us.Agent != "us" || us.Good != 3 || us.SLI != 1 || us.ErrorBudgetRemaining != 1 {
			t.Errorf("%s per agent %+v", s.Name, s.Agents)
		}
	}
}
