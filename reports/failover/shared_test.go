package failover_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/reports/failover"
	"github.com/otpprobe/otpprobe/reports/rounds"
	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
)

// postgresDSN is a DSN to a fresh schema of the server in
// OTPPROBE_POSTGRES_URL (scripts/test.sh starts one); without one the
// test skips, and fails under CI=true.
func postgresDSN(t *testing.T) string {
	t.Helper()
	url := os.Getenv("OTPPROBE_POSTGRES_URL")
	if url == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("OTPPROBE_POSTGRES_URL is not set under CI=true")
		}
		t.Skip("OTPPROBE_POSTGRES_URL is not set")
	}
	ctx := context.Background()
	schema := fmt.Sprintf("otpprobe_failover_%d", time.Now().UnixNano())
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		conn.Close(context.Background())
	})
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "search_path=" + schema
}

// agent is one prober's failover on the shared store.
type agent struct {
	name string
	st   *store.DB
	el   failover.Election
	f    *failover.Failover
	seen []failover.Transition
}

type sharedFixture struct {
	t      *testing.T
	cfg    *targets.Config
	dsn    string
	clk    *clock
	n      int
	agents map[string]*agent
}

func newSharedFixture(t *testing.T, cfgText string) *sharedFixture {
	cfg, err := targets.Parse([]byte(cfgText), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &sharedFixture{t: t, cfg: cfg, dsn: postgresDSN(t), agents: map[string]*agent{},
		clk: &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}}
}

// start runs agent name: its own store handle and election, as a process.
// el replaces the PostgreSQL election when not nil.
func (fx *sharedFixture) start(name string, el failover.Election) *agent {
	ctx := context.Background()
	st, err := store.OpenPostgres(ctx, fx.dsn)
	if err != nil {
		fx.t.Fatal(err)
	}
	fx.t.Cleanup(func() { st.Close() })
	a := &agent{name: name, st: st, el: el}
	if el == nil {
		e, err := st.Election(name)
		if err != nil {
			fx.t.Fatal(err)
		}
		fx.t.Cleanup(func() { e.Close() })
		a.el = e
	}
	a.f, err = failover.New(ctx, fx.cfg, failover.Options{Store: st, Now: fx.clk.Now, Agent: name,
		Shared: &failover.Shared{Store: st, Election: a.el},
		Changed: []func(context.Context, failover.Transition){func(_ context.Context, tr failover.Transition) {
			a.seen = append(a.seen, tr)
		}}})
	if err != nil {
		fx.t.Fatal(err)
	}
	fx.agents[name] = a
	return a
}

// round is one round of sender by agent a, started now.
func (fx *sharedFixture) round(a *agent, sender string, outcomes []attempt.Outcome) {
	r := rounds.Round{ID: fmt.Sprintf("%s-%s-%d", a.name, sender, fx.n), Probe: "otp", Sender: sender, Start: fx.clk.Now(),
		Providers: []string{"gmail", "outlook", "yahoo"}}
	for i, prov := range []string{"gmail", "yahoo", "outlook"} {
		fx.n++
		r.Attempts = append(r.Attempts, &attempt.Attempt{ID: fmt.Sprintf("%s%03d", a.name, fx.n), Agent: a.name, Probe: "otp",
			Sender: sender, Mailbox: prov, Provider: prov, CreatedAt: fx.clk.Now(), Outcome: outcomes[i]})
	}
	a.f.ObserveRound(context.Background(), r)
}

// interval runs one minute-long interval: each agent, in order, probes
// m365 with its outcomes and backup healthy, 10 s apart.
func (fx *sharedFixture) interval(m365 map[string][]attempt.Outcome, order ...string) {
	fx.clk.Set(fx.clk.Now().Truncate(time.Minute).Add(time.Minute + 5*time.Second))
	for _, name := range order {
		a := fx.agents[name]
		fx.round(a, "backup", healthy)
		fx.round(a, "m365", m365[name])
		fx.clk.Add(10 * time.Second)
	}
}

func (fx *sharedFixture) transitions() []store.RouteTransition {
	trs, err := fx.agents[fxFirst(fx)].st.Transitions(context.Background(), "otp", time.Time{}, 0)
	if err != nil {
		fx.t.Fatal(err)
	}
	return trs
}

func fxFirst(fx *sharedFixture) string {
	for name := range fx.agents {
		return name
	}
	return ""
}

func (fx *sharedFixture) intervals(st *store.DB) []store.RouteInterval {
	ivs, err := st.RouteIntervals(context.Background(), "otp", time.Time{})
	if err != nil {
		fx.t.Fatal(err)
	}
	return ivs
}

const sharedConfig = `
senders:
  - {name: m365, host: smtp.example.com, auth: {username: u, password: p}, from: otp@example.com}
  - {name: backup, host: relay.example.com, auth: {username: u, password: p}, from: otp@example.com}
mailboxes:
  - {name: gmail, provider: gmail, address: seed@gmail.example, auth: {username: u, password: p}}
  - {name: yahoo, provider: yahoo, address: seed@yahoo.example, auth: {username: u, password: p}}
  - {name: outlook, provider: outlook, address: seed@outlook.example, auth: {username: u, password: p}}
probes:
  - {name: otp, schedule: "@every 1m", deadline: 30s, latency_slo: 10s, senders: [m365, backup], mailboxes: [gmail, yahoo, outlook]}
routes:
  - {name: otp, primary: m365, backups: [backup], unhealthy_rounds: 2, healthy_rounds: 2, min_hold: 10m}
`

// TestSharedQuorumAndTakeover: two agents on one PostgreSQL store. One
// agent seeing m365 down is outvoted (majority of 2 is 2); both seeing it
// fail the route over once; the other agent serves the same decision;
// when the leader's session ends the other agent takes the decisions
// over at its next refresh and carries on from the stored streaks.
func TestSharedQuorumAndTakeover(t *testing.T) {
	fx := newSharedFixture(t, sharedConfig)
	eu, us := fx.start("eu", nil), fx.start("us", nil)
	ok := map[string][]attempt.Outcome{"eu": healthy, "us": healthy}
	fx.interval(ok, "eu", "us") // eu reports first: it leads
	if d, _ := eu.f.Decision("otp"); d.State != failover.StatePrimary {
		t.Fatalf("start: %+v", d)
	}
	// Only eu's path to m365 is broken, for four intervals (twice the
	// rounds needed to fail over): not a quorum.
	euDown := map[string][]attempt.Outcome{"eu": down, "us": healthy}
	for range 4 {
		fx.interval(euDown, "us", "eu")
	}
	if trs := fx.transitions(); len(trs) != 0 {
		t.Fatalf("one agent's view failed the route over: %+v", trs)
	}
	ivs := fx.intervals(eu.st)
	last := ivs[len(ivs)-1]
	if last.Sender != "m365" || last.Bad || len(last.Agents) != 2 || len(last.BadAgents) != 1 || last.BadAgents[0] != "eu" ||
		last.Quorum != 2 || last.Leader != "eu" {
		t.Fatalf("last interval %+v; want m365 healthy, 1 of 2 (eu) bad, quorum 2, counted by eu", last)
	}
	// Both see it: two bad intervals fail over, once.
	bothDown := map[string][]attempt.Outcome{"eu": down, "us": down}
	for range 2 {
		fx.interval(bothDown, "us", "eu")
	}
	trs := fx.transitions()
	if len(trs) != 2 || trs[0].ToState != failover.StateFailingOver || trs[1].ToState != failover.StateBackup ||
		trs[1].ToSender != "backup" || trs[1].Agent != "eu" {
		t.Fatalf("transitions %+v; want failing_over then backup, taken by eu", trs)
	}
	if !strings.Contains(trs[0].Reason, "2 of 2 agents (eu, us), quorum 2") {
		t.Errorf("reason %q does not say who saw it", trs[0].Reason)
	}
	if len(eu.seen) != 2 || len(us.seen) != 0 {
		t.Errorf("transitions told: eu %d, us %d; only the leader takes (and announces) them", len(eu.seen), len(us.seen))
	}
	// us reads the decision back at its next refresh (its poll).
	fx.round(us, "backup", healthy)
	if d, _ := us.f.Decision("otp"); d.ActiveSender != "backup" || d.State != failover.StateBackup {
		t.Errorf("us serves %+v; want the leader's decision (backup)", d)
	}

	// The leader dies: its session ends. us takes over at its next
	// refresh, continuing from the stored streaks: m365 healthy for two
	// intervals → recovering.
	eu.el.(*store.Election).Close()
	delete(fx.agents, "eu")
	usOK := map[string][]attempt.Outcome{"us": healthy}
	for range 2 {
		fx.interval(usOK, "us")
	}
	trs = fx.transitions()
	if len(trs) != 3 || trs[2].ToState != failover.StateRecovering || trs[2].Agent != "us" {
		t.Fatalf("after eu died: %+v; want us to take recovering", trs)
	}
	ivs = fx.intervals(us.st)
	for _, iv := range ivs[len(ivs)-2:] {
		if iv.Leader != "us" || len(iv.Agents) != 1 || iv.Quorum != 1 {
			t.Errorf("interval after eu died %+v; want counted by us alone, quorum 1", iv)
		}
	}
}

// bothLead is an election both agents win: two leaders at once (a split
// brain the lock prevents, and the store's conditional update survives).
type bothLead struct{}

func (bothLead) Leader(context.Context, string) (bool, error) { return true, nil }
func (bothLead) Live(_ context.Context, agents []string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, a := range agents {
		out[a] = true
	}
	return out, nil
}

// TestSharedNoTransitionTwice: even with two agents deciding at once,
// each interval is counted once and each transition stored once.
func TestSharedNoTransitionTwice(t *testing.T) {
	fx := newSharedFixture(t, sharedConfig)
	eu, us := fx.start("eu", bothLead{}), fx.start("us", bothLead{})
	bothDown := map[string][]attempt.Outcome{"eu": down, "us": down}
	fx.interval(map[string][]attempt.Outcome{"eu": healthy, "us": healthy}, "eu", "us")
	for range 3 {
		fx.interval(bothDown, "eu", "us")
		// Both refresh after both reported (their polls).
		fx.round(eu, "backup", healthy)
		fx.round(us, "backup", healthy)
	}
	trs := fx.transitions()
	var toBackup int
	for _, tr := range trs {
		if tr.ToState == failover.StateBackup {
			toBackup++
		}
	}
	if toBackup != 1 || len(eu.seen)+len(us.seen) != len(trs) {
		t.Fatalf("stored %+v; announced eu %d us %d: each transition once", trs, len(eu.seen), len(us.seen))
	}
	seen := map[string]bool{}
	for _, iv := range fx.intervals(eu.st) {
		k := iv.Sender + iv.Start.String()
		if seen[k] {
			t.Errorf("interval %s counted twice", k)
		}
		seen[k] = true
	}
}

func TestQuorum(t *testing.T) {
	for _, c := range []struct{ configured, n, want int }{
		{0, 1, 1}, {0, 2, 2}, {0, 3, 2}, {0, 4, 3}, {2, 3, 2}, {3, 2, 2}, {1, 5, 1},
	} {
		if got := failover.Quorum(c.configured, c.n); got != c.want {
			t.Errorf("Quorum(%d, %d) = %d, want %d", c.configured, c.n, got, c.want)
		}
	}
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}
