package rounds_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/reports/rounds"
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
	rounds []rounds.Round
}

func (c *collector) add(_ context.Context, r rounds.Round) {
	c.mu.Lock()
	c.rounds = append(c.rounds, r)
	c.mu.Unlock()
}

func (c *collector) wait(t *testing.T, n int) []rounds.Round {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		got := append([]rounds.Round(nil), c.rounds...)
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

func TestWindow(t *testing.T) {
	for spec, want := range map[string]time.Duration{
		"@every 2s": time.Second, "@every 1m": 30 * time.Second, "*/5 * * * *": 150 * time.Second,
		"@hourly": 5 * time.Minute, "@every 100ms": 500 * time.Millisecond, // cron rounds @every to whole seconds
	} {
		if got := rounds.Window(targets.Probe{Schedule: spec}); got != want {
			t.Errorf("Window(%s) = %v, want %v", spec, got, want)
		}
	}
}

func TestAssemble(t *testing.T) {
	cfg, err := targets.Parse([]byte(config), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	var c collector
	s := rounds.New(cfg, rounds.Options{Now: clock, Grace: time.Second}, c.add)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	n := 0
	mkAttempt := func(start time.Time, offset time.Duration, sender, mailbox, provider string, o attempt.Outcome) *attempt.Attempt {
		n++
		return &attempt.Attempt{ID: fmt.Sprintf("a%d", n), Probe: "otp", Sender: sender, Mailbox: mailbox, Provider: provider,
			CreatedAt: start.Add(offset), Outcome: o}
	}
	r1, r2 := now, now.Add(10*time.Second)
	// Round 2 finishes first; round 1's gmail attempt is lost at its
	// deadline. Rounds are handed on in the order they started.
	s.Observe(mkAttempt(r2, 0, "m365", "gmail", "gmail", attempt.OutcomeInbox))
	s.Observe(mkAttempt(r2, 3*time.Millisecond, "m365", "yahoo", "yahoo", attempt.OutcomeInbox))
	s.Observe(mkAttempt(r2, 5*time.Millisecond, "m365", "bank", "generic", attempt.OutcomeSpam))
	s.Observe(mkAttempt(r1, time.Millisecond, "m365", "yahoo", "yahoo", attempt.OutcomeInbox))
	s.Observe(mkAttempt(r1, 2*time.Millisecond, "m365", "bank", "generic", attempt.OutcomeInbox))
	s.Observe(&attempt.Attempt{ID: "pending", Probe: "otp", Outcome: attempt.OutcomePending}) // ignored
	time.Sleep(50 * time.Millisecond)
	c.mu.Lock()
	if len(c.rounds) != 0 {
		t.Errorf("handed on %d rounds before round 1 was complete", len(c.rounds))
	}
	c.mu.Unlock()
	s.Observe(mkAttempt(r1, 0, "m365", "gmail", "gmail", attempt.OutcomeLost))
	got := c.wait(t, 2)
	if !got[0].Start.Equal(r1) || !got[1].Start.Equal(r2) || got[0].Partial || got[1].Partial {
		t.Fatalf("rounds %+v", got)
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

	// A round that never completes is handed on as partial after its
	// deadline and the grace; a straggler of it afterwards is dropped.
	r3 := r2.Add(10 * time.Second)
	s.Observe(mkAttempt(r3, 0, "backup", "gmail", "gmail", attempt.OutcomeInbox))
	mu.Lock()
	now = r3.Add(31 * time.Second)
	mu.Unlock()
	got = c.wait(t, 3)
	if !got[2].Partial || got[2].Sender != "backup" || len(got[2].Attempts) != 1 {
		t.Errorf("partial round %+v", got[2])
	}
	s.Observe(mkAttempt(r3, time.Millisecond, "backup", "yahoo", "yahoo", attempt.OutcomeInbox))
	time.Sleep(1200 * time.Millisecond)
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	time.Sleep(1200 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.rounds) != 3 {
		t.Errorf("a straggler of a handed-on round made another round: %+v", c.rounds[3:])
	}
}
