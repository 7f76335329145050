package failover_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/reports/failover"
	"github.com/otpprobe/otpprobe/reports/rounds"
	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
	"github.com/otpprobe/otpprobe/verify"
)

const config = `
senders:
  - {name: m365, host: smtp.example.com, auth: {username: u, password: p}, from: otp@example.com}
  - {name: backup, host: relay.example.com, auth: {username: u, password: p}, from: otp@example.com}
mailboxes:
  - {name: gmail, provider: gmail, address: seed@gmail.example, auth: {username: u, password: p}}
  - {name: yahoo, provider: yahoo, address: seed@yahoo.example, auth: {username: u, password: p}}
  - {name: outlook, provider: outlook, address: seed@outlook.example, auth: {username: u, password: p}}
probes:
  - {name: otp, schedule: "@every 1m", senders: [m365, backup], mailboxes: [gmail, yahoo, outlook]}
routes:
  - {name: otp, primary: m365, backups: [backup], unhealthy_rounds: 3, healthy_rounds: 2, min_hold: 1m}
`

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	t     *testing.T
	cfg   *targets.Config
	st    *store.SQLite
	clk   *clock
	f     *failover.Failover
	seen  []failover.Transition
	queue int // outbox entries queued with transitions
	n     int // attempts made
}

func newFixture(t *testing.T) *fixture {
	cfg, err := targets.Parse([]byte(config), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "otpprobe.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fx := &fixture{t: t, cfg: cfg, st: st, clk: &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}}
	fx.open()
	return fx
}

// open (re)builds the Failover from the store, as a restart does.
func (fx *fixture) open() {
	f, err := failover.New(context.Background(), fx.cfg, failover.Options{
		Store: fx.st, Now: fx.clk.Now, Agent: "test",
		Outbox: func(r targets.Route, tr failover.Transition) []store.OutboxEntry {
			fx.queue++
			return []store.OutboxEntry{{Notifier: "webhook:test", Kind: "route_transition", Payload: []byte(`{}`)}}
		},
		Changed: []func(context.Context, failover.Transition){func(_ context.Context, tr failover.Transition) {
			fx.seen = append(fx.seen, tr)
		}},
	})
	if err != nil {
		fx.t.Fatal(err)
	}
	fx.f = f
}

// round feeds one round of sender with one outcome per provider
// (gmail, yahoo, outlook), a minute after the previous one.
func (fx *fixture) round(sender string, outcomes ...attempt.Outcome) {
	fx.clk.Add(time.Minute)
	r := rounds.Round{Probe: "otp", Sender: sender, Start: fx.clk.Now(), Providers: []string{"gmail", "outlook", "yahoo"}}
	for i, prov := range []string{"gmail", "yahoo", "outlook"} {
		fx.n++
		a := &attempt.Attempt{ID: fmt.Sprintf("a%03d", fx.n), Probe: "otp", Sender: sender, Mailbox: prov, Provider: prov,
			CreatedAt: fx.clk.Now(), Outcome: outcomes[i]}
		if a.Outcome == attempt.OutcomeSpam {
			a.Verdicts = verify.Verdicts{Trusted: true, SPF: "temperror", DKIM: "fail", DMARC: "fail"}
		}
		r.Attempts = append(r.Attempts, a)
	}
	fx.f.ObserveRound(context.Background(), r)
}

var (
	healthy = []attempt.Outcome{attempt.OutcomeInbox, attempt.OutcomeInbox, attempt.OutcomeInbox}
	broken  = []attempt.Outcome{attempt.OutcomeBounced, attempt.OutcomeBounced, attempt.OutcomeSpam}
	oneLost = []attempt.Outcome{attempt.OutcomeInbox, attempt.OutcomeLost, attempt.OutcomeInbox}
	down    = []attempt.Outcome{attempt.OutcomeSendFailed, attempt.OutcomeSendFailed, attempt.OutcomeSendFailed}
)

func (fx *fixture) want(state, active string) failover.Decision {
	fx.t.Helper()
	d, ok := fx.f.Decision("otp")
	if !ok || d.State != state || d.ActiveSender != active {
		fx.t.Fatalf("decision %+v, want %s on %s", d, state, active)
	}
	return d
}

func (fx *fixture) transitions() string {
	trs, err := fx.st.Transitions(context.Background(), "otp", time.Time{}, 0)
	if err != nil {
		fx.t.Fatal(err)
	}
	var out []string
	for _, t := range trs {
		out = append(out, t.FromState+">"+t.ToState)
	}
	return strings.Join(out, " ")
}

func TestFailoverAndFailBackWithHysteresis(t *testing.T) {
	fx := newFixture(t)
	fx.cfg.Routes[0].MinHold = 3 * time.Minute
	fx.open()
	fx.want(failover.StatePrimary, "m365")
	fx.round("backup", healthy...)
	fx.round("m365", broken...)
	fx.round("m365", broken...)
	fx.want(failover.StatePrimary, "m365") // N=3: two rounds are not enough
	fx.round("m365", broken...)
	d := fx.want(failover.StateBackup, "backup")
	if !strings.Contains(d.Reason, "m365 unhealthy at gmail, outlook, yahoo (3 of 3 providers) for 3 consecutive rounds") {
		t.Errorf("reason %q", d.Reason)
	}
	if !strings.Contains(d.Diagnosis, "outlook via m365: spam (spf=temperror dkim=fail dmarc=fail)") || len(d.Evidence) != 9 {
		t.Errorf("diagnosis %q, evidence %v", d.Diagnosis, d.Evidence)
	}
	switched := fx.clk.Now()
	if d.Since != switched.Format(time.RFC3339Nano) {
		t.Errorf("since %s, want the switch time %s", d.Since, switched)
	}

	fx.round("m365", healthy...)
	fx.want(failover.StateBackup, "backup")     // M=2
	fx.round("m365", oneLost...)                // one loss is healthy at K=2
	fx.want(failover.StateRecovering, "backup") // held 2m of 3m
	// Rounds are a minute apart: at the next one the hold has passed.
	fx.round("m365", healthy...)
	fx.want(failover.StatePrimary, "m365")
	if got, want := fx.transitions(), "primary>failing_over failing_over>backup backup>recovering recovering>primary"; got != want {
		t.Errorf("transitions %q, want %q", got, want)
	}
	if len(fx.seen) != 4 || fx.queue != 4 {
		t.Errorf("%d transitions told, %d notifications queued; want 4 each", len(fx.seen), fx.queue)
	}
	if n, err := fx.st.UndeliveredCount(context.Background()); err != nil || n != 4 {
		t.Errorf("outbox holds %d (%v), want the 4 transition notifications", n, err)
	}
}

func TestMinHoldDelaysFailBack(t *testing.T) {
	fx := newFixture(t)
	fx.cfg.Routes[0].MinHold = time.Hour
	fx.open()
	fx.round("backup", healthy...)
	for range 3 {
		fx.round("m365", broken...)
	}
	fx.want(failover.StateBackup, "backup")
	for range 10 {
		fx.round("m365", healthy...)
	}
	fx.want(failover.StateRecovering, "backup")
	fx.round("m365", broken...)
	fx.want(failover.StateBackup, "backup") // unhealthy again while recovering
	fx.clk.Add(time.Hour)
	fx.round("m365", healthy...)
	fx.round("m365", healthy...)
	fx.want(failover.StatePrimary, "m365")
}

func TestNeverFailOverToAnUnhealthyBackup(t *testing.T) {
	fx := newFixture(t)
	fx.round("backup", down...)
	for range 5 {
		fx.round("m365", down...)
	}
	d := fx.want(failover.StateFailingOver, "m365")
	if !strings.Contains(d.Reason, "5 consecutive rounds") && !strings.Contains(d.Reason, "3 consecutive rounds") {
		t.Errorf("reason %q", d.Reason)
	}
	fx.round("backup", healthy...)
	fx.want(failover.StateBackup, "backup")
}

func TestFailingOverReturnsWhenThePrimaryHeals(t *testing.T) {
	fx := newFixture(t)
	for range 3 {
		fx.round("m365", broken...) // no backup round seen yet: health unknown
	}
	fx.want(failover.StateFailingOver, "m365")
	fx.round("m365", healthy...)
	fx.want(failover.StatePrimary, "m365")
	if got := fx.transitions(); got != "primary>failing_over failing_over>primary" {
		t.Errorf("transitions %q", got)
	}
}

func TestSingleLossesNeverFailOver(t *testing.T) {
	fx := newFixture(t)
	fx.round("backup", healthy...)
	for i := range 30 {
		if i%2 == 0 {
			fx.round("m365", oneLost...)
		} else {
			fx.round("m365", healthy...)
		}
	}
	fx.want(failover.StatePrimary, "m365")
	if got := fx.transitions(); got != "" {
		t.Errorf("transitions %q, want none", got)
	}
}

func TestPinAndUnpin(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	if _, err := fx.f.Pin(ctx, "otp", "sendgrid", failover.Operator{}); err == nil || !strings.Contains(err.Error(), "not on this route") {
		t.Errorf("pin to an unknown sender: %v", err)
	}
	if _, err := fx.f.Pin(ctx, "nope", "backup", failover.Operator{}); err == nil {
		t.Error("pin of an unknown route accepted")
	}
	d, err := fx.f.Pin(ctx, "otp", "backup", failover.Operator{Name: "oncall", Source: "192.0.2.7", Reason: "maintenance on the tenant"})
	if err != nil {
		t.Fatal(err)
	}
	if d.State != failover.StatePinned || d.ActiveSender != "backup" || !d.Pinned || !strings.Contains(d.Reason, "maintenance") {
		t.Errorf("pinned decision %+v", d)
	}
	for range 3 {
		fx.round("m365", healthy...)
	}
	fx.want(failover.StatePinned, "backup") // the probes do not override a pin

	// A restart keeps the pin.
	fx.open()
	fx.want(failover.StatePinned, "backup")

	if _, err := fx.f.Unpin(ctx, "otp", failover.Operator{Name: "lead", Source: "192.0.2.8", Reason: "tenant fixed"}); err != nil {
		t.Fatal(err)
	}
	// Who pinned and unpinned is on the transitions they caused, and only
	// on those.
	trs, _ := fx.st.Transitions(ctx, "otp", time.Time{}, 0)
	if len(trs) < 3 || trs[0].Actor != "oncall" || trs[0].Source != "192.0.2.7" || !strings.Contains(trs[0].Reason, "by oncall: maintenance") ||
		trs[1].Actor != "lead" || trs[1].Source != "192.0.2.8" || !strings.Contains(trs[1].Reason, "unpinned (tenant fixed)") || trs[2].Actor != "" {
		t.Errorf("audit on the transitions: %+v", trs)
	}
	// m365 was healthy for 3 rounds and the backup active for 3 minutes
	// (≥ M and the hold), so unpinning fails back at once, through the
	// states of the machine.
	fx.want(failover.StatePrimary, "m365")
	if got := fx.transitions(); got != "primary>pinned pinned>backup backup>recovering recovering>primary" {
		t.Errorf("transitions %q", got)
	}
	// Pinned to the primary, unpinning leaves it there.
	if _, err := fx.f.Pin(ctx, "otp", "m365", failover.Operator{}); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.f.Unpin(ctx, "otp", failover.Operator{}); err != nil {
		t.Fatal(err)
	}
	fx.want(failover.StatePrimary, "m365")
}

func TestRestartKeepsStateAndStreaks(t *testing.T) {
	fx := newFixture(t)
	fx.round("backup", healthy...)
	fx.round("m365", broken...)
	fx.round("m365", broken...)
	fx.open() // restart between the second and the third unhealthy round
	fx.want(failover.StatePrimary, "m365")
	fx.round("backup", healthy...)
	fx.round("m365", broken...)
	fx.want(failover.StateBackup, "backup")
	before, _ := fx.f.Decision("otp")
	fx.open()
	after := fx.want(failover.StateBackup, "backup")
	if after.Since != before.Since || after.Reason != before.Reason || len(after.Evidence) != len(before.Evidence) {
		t.Errorf("after restart %+v, before %+v", after, before)
	}
}

// TestPinFromAnotherProcess: Run picks up a pin written straight to the
// store (otpprobe route pin).
func TestPinFromAnotherProcess(t *testing.T) {
	fx := newFixture(t)
	f, err := failover.New(context.Background(), fx.cfg, failover.Options{Store: fx.st, Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := fx.st.SetPin(ctx, store.RoutePin{Route: "otp", Sender: "backup", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if d, _ := f.Decision("otp"); d.ActiveSender == "backup" && d.Pinned {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the pin in the store was not applied")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := fx.st.DeletePin(ctx, "otp"); err != nil {
		t.Fatal(err)
	}
	for {
		if d, _ := f.Decision("otp"); !d.Pinned && d.State == failover.StateBackup {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the unpin in the store was not applied")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStoredPinToUnknownSenderWarnsOnce: a pin another process stored
// for a sender not on the route is ignored and logged once, not at every
// poll.
func TestStoredPinToUnknownSenderWarnsOnce(t *testing.T) {
	fx := newFixture(t)
	logs := &lockedBuffer{}
	f, err := failover.New(context.Background(), fx.cfg, failover.Options{Store: fx.st, Poll: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := fx.st.SetPin(ctx, store.RoutePin{Route: "otp", Sender: "nope", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	const warning = "ignoring pin to a sender not on the route"
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), warning) {
		if time.Now().After(deadline) {
			t.Fatal("the pin to an unknown sender was not logged")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // many more polls
	if n := strings.Count(logs.String(), warning); n != 1 {
		t.Errorf("the ignored pin was logged %d times, want once", n)
	}
	if d, _ := f.Decision("otp"); d.Pinned || d.ActiveSender != "m365" {
		t.Errorf("decision %+v, want the primary, unpinned", d)
	}
}

// TestExecHook: every transition runs the route's command with the
// decision as JSON on stdin, in order; a hung command is killed at its
// timeout and does not hold up the next.
func TestExecHook(t *testing.T) {
	dir := t.TempDir()
	f := newHookFailover(t, dir, `exec: {command: [sh, -c, "cat >> hook.jsonl; [ -e hang ] && sleep 30; true"], timeout: 300ms}`, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	defer func() { cancel(); <-done }()

	if err := os.WriteFile(filepath.Join(dir, "hang"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Pin(ctx, "otp", "backup", failover.Operator{Reason: "first"}); err != nil {
		t.Fatal(err)
	}
	waitLines(t, filepath.Join(dir, "hook.jsonl"), 1)
	os.Remove(filepath.Join(dir, "hang"))
	if _, err := f.Unpin(ctx, "otp", failover.Operator{}); err != nil {
		t.Fatal(err)
	}
	lines := waitLines(t, filepath.Join(dir, "hook.jsonl"), 2)
	var first, second failover.Transition
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	if first.ToState != failover.StatePinned || first.Decision.ActiveSender != "backup" || second.FromState != failover.StatePinned {
		t.Errorf("hook got %+v then %+v", first, second)
	}
}

// TestRunWaitsForExecHooks: Run returns only once a hook command running
// at shutdown has been stopped, so none outlives the daemon's wait.
func TestRunWaitsForExecHooks(t *testing.T) {
	dir := t.TempDir()
	var logs lockedBuffer
	f := newHookFailover(t, dir, `exec: {command: [sh, -c, "cat >> hook.jsonl; sleep 30"], timeout: 1m}`, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	if _, err := f.Pin(ctx, "otp", "backup", failover.Operator{Reason: "drill"}); err != nil {
		t.Fatal(err)
	}
	waitLines(t, filepath.Join(dir, "hook.jsonl"), 1) // the hook is running
	cancel()
	<-done
	if !strings.Contains(logs.String(), "exec hook ran") {
		t.Errorf("Run returned while the hook was still running; log:\n%s", logs.String())
	}
}

// newHookFailover builds a failover whose route "otp" runs the exec hook
// given as flow YAML, with dir as the config directory and its own store.
func newHookFailover(t *testing.T, dir, exec string, logger *slog.Logger) *failover.Failover {
	t.Helper()
	cfg, err := targets.Parse([]byte(strings.Replace(config, "min_hold: 1m}", "min_hold: 1m, "+exec+"}", 1)), dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(context.Background(), filepath.Join(dir, "otpprobe.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f, err := failover.New(context.Background(), cfg, failover.Options{Store: st, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// lockedBuffer is a log destination safe for concurrent writes.
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

func waitLines(t *testing.T, path string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(data) > 0 && len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d lines, want %d", path, len(lines), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPartialRoundsThatCannotTell: a round cut short by a restart counts
// only when what it has decides it.
func TestPartialRoundsThatCannotTell(t *testing.T) {
	fx := newFixture(t)
	fx.round("backup", healthy...)
	for range 3 {
		fx.round("m365", broken...)
	}
	fx.want(failover.StateBackup, "backup")
	partial := func(outcomes ...attempt.Outcome) {
		fx.clk.Add(time.Minute)
		r := rounds.Round{Probe: "otp", Sender: "m365", Start: fx.clk.Now(), Providers: []string{"gmail", "outlook", "yahoo"}, Partial: true}
		for i, o := range outcomes {
			fx.n++
			prov := []string{"gmail", "yahoo", "outlook"}[i]
			r.Attempts = append(r.Attempts, &attempt.Attempt{ID: fmt.Sprintf("p%d", fx.n), Sender: "m365", Mailbox: prov, Provider: prov, Outcome: o})
		}
		fx.f.ObserveRound(context.Background(), r)
	}
	for range 5 {
		partial(attempt.OutcomeInbox) // one inbox of three: could still be a bad round
	}
	fx.want(failover.StateBackup, "backup")
	partial(attempt.OutcomeInbox, attempt.OutcomeInbox) // two of three healthy: healthy at K=2
	partial(attempt.OutcomeInbox, attempt.OutcomeInbox)
	fx.want(failover.StatePrimary, "m365")
}
