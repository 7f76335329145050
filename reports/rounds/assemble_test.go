package rounds

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/targets"
)

const config = `
senders:
  - {name: m365, host: smtp.example.com, auth: {username: u, password: p}, from: otp@example.com}
  - {name: backup, host: relay.example.com, auth: {username: u, password: p}, from: otp@example.com}
mailboxes:
  - {name: gmail, provider: gmail, address: seed@gmail.example, auth: {username: u, password: p}}
  - {name: yahoo, provider: yahoo, address: seed@yahoo.example, auth: {username: u, password: p}}
  - {name: bank, provider: generic, host: imap.bank.example, authserv_id: mx.bank.example, address: seed@bank.example, auth: {username: u, password: p}}
probes:
  - {name: otp, schedule: "@every 10s", deadline: 30s, latency_slo: 5s, senders: [m365, backup], mailboxes: [gmail, yahoo, bank]}
`

type collector struct {
	mu     sync.Mutex
	rounds []Round
}

func (c *collector) add(_ context.Context, r Round) {
	c.mu.Lock()
	c.rounds = append(c.rounds, r)
	c.mu.Unlock()
}

func (c *collector) wait(t *testing.T, n int) []Round {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		c.mu.Lock()
		got := append([]Round(nil), c.rounds...)
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d rounds, want %d", len(got), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fixture makes attempts of numbered rounds: round n starts n×10s after
// t0 and its ID sorts by n, as UUIDv7 IDs sort by time.
type fixture struct {
	t0 time.Time
	n  int
}

func (f *fixture) roundID(n int) string {
	return fmt.Sprintf("0193a6f2-%04x-7000-8000-000000000000", n)
}

func (f *fixture) start(n int) time.Time { return f.t0.Add(time.Duration(n) * 10 * time.Second) }

func (f *fixture) attempt(round int, sender, mailbox, provider string, o attempt.Outcome) *attempt.Attempt {
	f.n++
	created := f.start(round).Add(time.Duration(f.n) * time.Millisecond)
	return &attempt.Attempt{ID: fmt.Sprintf("a%03d", f.n), RoundID: f.roundID(round), Probe: "otp", Sender: sender,
		Mailbox: mailbox, Provider: provider, CreatedAt: created, Deadline: created.Add(30 * time.Second), Outcome: o}
}

// round begins round n with an attempt per sender × mailbox of the config;
// it returns them by sender and mailbox.
func (f *fixture) round(n int) (*attempt.Round, map[string]*attempt.Attempt) {
	r := &attempt.Round{ID: f.roundID(n), Probe: "otp", StartedAt: f.start(n)}
	by := map[string]*attempt.Attempt{}
	for _, s := range []string{"m365", "backup"} {
		for _, mb := range [][2]string{{"gmail", "gmail"}, {"yahoo", "yahoo"}, {"bank", "generic"}} {
			a := f.attempt(n, s, mb[0], mb[1], attempt.OutcomePending)
			r.Attempts = append(r.Attempts, a)
			by[s+"/"+mb[0]] = a
		}
	}
	return r, by
}

func decided(a *attempt.Attempt, o attempt.Outcome) *attempt.Attempt {
	c := *a
	c.Outcome = o
	return &c
}

func newTestBook(t *testing.T) *book {
	t.Helper()
	cfg, err := targets.Parse([]byte(config), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return newBook(cfg, time.Second, slog.New(slog.DiscardHandler))
}

// TestBookOrder: rounds are handed on per sender in the order they
// started, each once all the attempts it created are decided.
func TestBookOrder(t *testing.T) {
	bk := newTestBook(t)
	f := &fixture{t0: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	r1, a1 := f.round(1)
	r2, a2 := f.round(2)
	bk.begin(r1)
	bk.begin(r2)
	now := f.start(2)
	// Round 2 of m365 finishes first; round 1's gmail attempt is lost at
	// its deadline.
	for _, mb := range []string{"gmail", "yahoo"} {
		bk.add(decided(a2["m365/"+mb], attempt.OutcomeInbox))
	}
	bk.add(decided(a2["m365/bank"], attempt.OutcomeSpam))
	bk.add(decided(a1["m365/yahoo"], attempt.OutcomeInbox))
	bk.add(decided(a1["m365/bank"], attempt.OutcomeInbox))
	bk.add(&attempt.Attempt{ID: "pending", Probe: "otp", RoundID: r1.ID, Outcome: attempt.OutcomePending})
	if got := bk.due(now); len(got) != 0 {
		t.Fatalf("handed on %d rounds before m365's round 1 was complete: %+v", len(got), got)
	}
	bk.add(decided(a1["m365/gmail"], attempt.OutcomeLost))
	got := bk.due(now)
	if len(got) != 2 || got[0].ID != r1.ID || got[1].ID != r2.ID || got[0].Sender != "m365" || got[0].Partial || got[1].Partial {
		t.Fatalf("rounds %+v", got)
	}
	if !got[0].Start.Equal(r1.StartedAt) || len(got[0].Attempts) != 3 {
		t.Errorf("round 1 start %v, %d attempts", got[0].Start, len(got[0].Attempts))
	}
	if u := got[0].Unhealthy(); len(u) != 1 || u[0] != "gmail" {
		t.Errorf("round 1 unhealthy %v", u)
	}
	if u := got[1].Unhealthy(); len(u) != 1 || u[0] != "bank" {
		t.Errorf("round 2 unhealthy %v (a generic mailbox counts by its name)", u)
	}
	if p := got[0].Providers; len(p) != 3 || p[0] != "bank" {
		t.Errorf("providers %v", p)
	}
	if d := got[0].Diagnosis(); d != "gmail via m365: lost" {
		t.Errorf("diagnosis %q", d)
	}
	// A duplicate and a straggler of a handed-on round change nothing.
	bk.add(decided(a1["m365/gmail"], attempt.OutcomeInbox))
	if got := bk.due(now.Add(time.Hour)); len(got) != 2 || got[0].Sender != "backup" || got[1].Sender != "backup" ||
		!got[0].Partial || len(got[0].Attempts) != 0 {
		t.Errorf("after the deadline only backup's two undecided rounds go out, partial: %+v", got)
	}
}

// TestBookOverdue: a round with an undecided attempt is handed on as
// partial at its latest deadline plus the grace, not before.
func TestBookOverdue(t *testing.T) {
	bk := newTestBook(t)
	f := &fixture{t0: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	r, a := f.round(1)
	bk.begin(r)
	for _, k := range []string{"m365/gmail", "m365/yahoo", "backup/gmail", "backup/yahoo", "backup/bank"} {
		bk.add(decided(a[k], attempt.OutcomeInbox))
	}
	if got := bk.due(f.start(1)); len(got) != 1 || got[0].Sender != "backup" {
		t.Fatalf("only backup's complete round is due: %+v", got)
	}
	last := a["m365/bank"].Deadline.Add(time.Second) // deadline + grace
	if got := bk.due(last.Add(-time.Millisecond)); len(got) != 0 {
		t.Fatalf("handed on before its deadline and grace: %+v", got)
	}
	got := bk.due(last)
	if len(got) != 1 || !got[0].Partial || len(got[0].Attempts) != 2 {
		t.Fatalf("overdue round %+v", got)
	}
}

// TestBookResumed: after a restart the engine did not begin the round, so
// the book expects one attempt per mailbox; attempts stored before rounds
// had IDs are never grouped.
func TestBookResumed(t *testing.T) {
	bk := newTestBook(t)
	f := &fixture{t0: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	_, a := f.round(1)
	noRound := decided(a["m365/gmail"], attempt.OutcomeLost)
	noRound.RoundID = ""
	bk.add(noRound)
	bk.add(decided(a["m365/gmail"], attempt.OutcomeInbox))
	bk.add(decided(a["m365/yahoo"], attempt.OutcomeInbox))
	if got := bk.due(f.start(1)); len(got) != 0 {
		t.Fatalf("handed on with 2 of 3 mailboxes: %+v", got)
	}
	bk.add(decided(a["m365/bank"], attempt.OutcomeInbox))
	if got := bk.due(f.start(1)); len(got) != 1 || got[0].Partial || len(got[0].Attempts) != 3 {
		t.Fatalf("resumed round %+v", got)
	}
}

// TestAssembler runs the goroutine side: rounds reach the subscribers.
func TestAssembler(t *testing.T) {
	cfg, err := targets.Parse([]byte(config), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var c collector
	s := New(cfg, Options{}, c.add)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	f := &fixture{t0: time.Now().UTC()}
	r, _ := f.round(1)
	s.Begin(r)
	for _, a := range r.Attempts {
		s.Observe(decided(a, attempt.OutcomeInbox))
	}
	got := c.wait(t, 2)
	if got[0].ID != r.ID || got[1].ID != r.ID || got[0].Sender != "m365" || got[1].Sender != "backup" {
		t.Fatalf("rounds %+v", got)
	}
}
