package probe_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/probe"
	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
)

// labConfig starts a lab world and loads the config it generates.
func labConfig(t testing.TB, o lab.Options, co lab.ConfigOptions) (*lab.World, *targets.Config) {
	t.Helper()
	w, err := lab.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if co.Dir == "" {
		co.Dir = t.TempDir()
	}
	path, err := w.Endpoints().WriteConfig(co)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := targets.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return w, cfg
}

func openStore(t testing.TB, path string) *store.SQLite {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// collector records the attempts the engine publishes.
type collector struct {
	mu   sync.Mutex
	seen map[string]int
	all  []*attempt.Attempt
}

func (c *collector) observe(a *attempt.Attempt) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]int{}
	}
	c.seen[a.ID]++
	c.all = append(c.all, a)
}

func (c *collector) count(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[id]
}

func startEngine(t testing.TB, ctx context.Context, cfg *targets.Config, st attempt.Store, c *collector) *probe.Engine {
	t.Helper()
	e, err := probe.New(cfg, probe.Options{Store: st, Observers: []func(*attempt.Attempt){c.observe}, SweepEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return e
}

func roundAndWait(t testing.TB, ctx context.Context, e *probe.Engine, probeName string) []*attempt.Attempt {
	t.Helper()
	round, err := e.Round(ctx, probeName)
	if err != nil {
		t.Fatal(err)
	}
	as := round.Attempts
	ids := make([]string, len(as))
	for i, a := range as {
		ids[i] = a.ID
		if a.RoundID != round.ID || round.ID == "" {
			t.Fatalf("attempt %s has round %q, want the round's %q", a.ID, a.RoundID, round.ID)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := e.Wait(wctx, ids...); err != nil {
		t.Fatalf("attempts not decided: %v", err)
	}
	return as
}

func TestEngineHealthyLab(t *testing.T) {
	_, cfg := labConfig(t, lab.Options{}, lab.ConfigOptions{})
	st := openStore(t, filepath.Join(t.TempDir(), "otpprobe.db"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var c collector
	e := startEngine(t, ctx, cfg, st, &c)
	as := roundAndWait(t, ctx, e, "otp")
	if len(as) != 6 {
		t.Fatalf("%d attempts, want 6 (2 senders x 3 mailboxes)", len(as))
	}
	for _, a := range as {
		if a.Outcome != attempt.OutcomeInbox || a.Late {
			t.Errorf("%s→%s: %s late=%v smtp=%+v", a.Sender, a.Mailbox, a.Outcome, a.Late, a.SMTP)
			continue
		}
		v := a.Verdicts
		if !v.Trusted || v.SPF != "pass" || v.DKIM != "pass" || v.DMARC != "pass" {
			t.Errorf("%s→%s verdicts %+v", a.Sender, a.Mailbox, v)
		}
		if a.SubmittedAt.IsZero() || a.SeenAt.Before(a.SubmittedAt) || a.Folder != "INBOX" || a.Header == "" || a.ReceivedAt.IsZero() {
			t.Errorf("%s→%s: submitted %v seen %v folder %q header %d bytes received %v", a.Sender, a.Mailbox, a.SubmittedAt, a.SeenAt, a.Folder, len(a.Header), a.ReceivedAt)
		}
		got, err := st.Get(ctx, a.ID)
		if err != nil || got.Outcome != attempt.OutcomeInbox || got.Verdicts.DKIM != "pass" {
			t.Errorf("stored %s: %v %+v", a.ID, err, got)
		}
	}
	if p, _ := st.Pending(ctx, ""); len(p) != 0 {
		t.Errorf("%d attempts still pending in the store", len(p))
	}
}

// An attempt is stored pending before its canary is sent; when the engine
// stops between send and arrival, the next engine on the same store resumes
// it, and every attempt is decided exactly once.
func TestEngineResumesAfterStop(t *testing.T) {
	w, cfg := labConfig(t, lab.Options{ProviderDelay: 2 * time.Second}, lab.ConfigOptions{})
	if err := w.Apply("provider-delay"); err != nil { // yahoo holds its canaries 2s
		t.Fatal(err)
	}
	dbPath := filepath.Join(t.TempDir(), "otpprobe.db")
	st := openStore(t, dbPath)
	ctx1, stop1 := context.WithCancel(context.Background())
	var c1 collector
	e1 := startEngine(t, ctx1, cfg, st, &c1)
	round, err := e1.Round(ctx1, "otp")
	as := round.Attempts
	if err != nil {
		t.Fatal(err)
	}
	stop1()  // the prober stops while yahoo still holds two canaries
	select { // its watchers and sweeper end with their context
	case <-e1.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("engine goroutines still running 30s after its context ended")
	}

	pending, err := st.Pending(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) == 0 {
		t.Fatal("nothing pending after the stop: the test did not stop between send and arrival")
	}
	ctx2, stop2 := context.WithCancel(context.Background())
	defer stop2()
	var c2 collector
	e2 := startEngine(t, ctx2, cfg, st, &c2)
	ids := make([]string, len(pending))
	for i, a := range pending {
		ids[i] = a.ID
	}
	wctx, cancel := context.WithTimeout(ctx2, time.Minute)
	defer cancel()
	if err := e2.Wait(wctx, ids...); err != nil {
		t.Fatalf("resumed attempts not decided: %v", err)
	}
	for _, a := range as {
		got, err := st.Get(context.Background(), a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Outcome != attempt.OutcomeInbox {
			t.Errorf("%s→%s: %s after resume", got.Sender, got.Mailbox, got.Outcome)
		}
		if n := c1.count(a.ID) + c2.count(a.ID); n != 1 {
			t.Errorf("%s→%s published %d times, want once", got.Sender, got.Mailbox, n)
		}
	}
	t.Logf("%d of %d attempts were pending at the stop and resumed", len(pending), len(as))
}

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		os.Exit(crashChild())
	}
	if os.Getenv(benchLabEnv) != "" {
		os.Exit(benchLabChild())
	}
	os.Exit(m.Run())
}

// failingCreates fails every Create after the first n.
type failingCreates struct {
	attempt.Store
	mu sync.Mutex
	n  int
}

func (s *failingCreates) Create(ctx context.Context, a *attempt.Attempt) error {
	s.mu.Lock()
	s.n--
	left := s.n
	s.mu.Unlock()
	if left < 0 {
		return errors.New("disk full")
	}
	return s.Store.Create(ctx, a)
}

// A round whose store fails part-way still sends and decides the attempts
// it already stored, instead of leaving them live and unsent for ever.
func TestEngineRoundStoreFailure(t *testing.T) {
	_, cfg := labConfig(t, lab.Options{}, lab.ConfigOptions{})
	st := &failingCreates{Store: openStore(t, filepath.Join(t.TempDir(), "otpprobe.db")), n: 2}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var c collector
	e := startEngine(t, ctx, cfg, st, &c)
	round, err := e.Round(ctx, "otp")
	as := round.Attempts
	if err == nil || len(as) != 2 {
		t.Fatalf("Round = %d attempts, %v; want the 2 stored ones and the store's error", len(as), err)
	}
	ids := []string{as[0].ID, as[1].ID}
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	if err := e.Wait(wctx, ids...); err != nil {
		t.Fatalf("stored attempts of the failed round not decided: %v", err)
	}
	for _, id := range ids {
		got, err := st.Get(ctx, id)
		if err != nil || got.Outcome != attempt.OutcomeInbox {
			t.Errorf("stored %s: %v %+v", id, err, got)
		}
	}
}
