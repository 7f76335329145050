package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSaveRouteIf: a decision is stored only from the version it was read
// at, with the intervals it counted; a stale version or an interval
// counted already stores nothing. Verdicts of rounds are kept once.
func TestSaveRouteIf(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	st := RouteState{Route: "otp", ActiveSender: "m365", State: "primary", Since: t0, Reason: "start"}
	if err := s.SaveRoute(ctx, &st, nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range []RouteRound{
		{Route: "otp", Sender: "m365", RoundID: "r1", Agent: "eu", StartedAt: t0.Add(time.Second), Bad: true, Unhealthy: []string{"gmail"}, Providers: 3, Evidence: []string{"a1"}},
		{Route: "otp", Sender: "m365", RoundID: "r1", Agent: "eu", StartedAt: t0.Add(time.Second)}, // the same round again
		{Route: "otp", Sender: "m365", RoundID: "r2", Agent: "us", StartedAt: t0.Add(2 * time.Second), Providers: 3},
	} {
		if err := s.RecordRouteRound(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := s.RouteRounds(ctx, "otp", t0)
	if err != nil || len(rs) != 2 || !rs[0].Bad || rs[0].Agent != "eu" || !reflect.DeepEqual(rs[0].Unhealthy, []string{"gmail"}) ||
		rs[1].Bad || len(rs[1].Unhealthy) != 0 {
		t.Fatalf("rounds %+v %v", rs, err)
	}
	iv := RouteInterval{Route: "otp", Sender: "m365", Start: t0, Agents: []string{"eu", "us"}, BadAgents: []string{"eu"},
		Quorum: 2, Rounds: []string{"r1", "r2"}, Leader: "eu"}
	read := st.Version
	st.BadRounds = 1
	tr := &RouteTransition{Route: "otp", At: t0, FromState: "primary", ToState: "failing_over", FromSender: "m365", ToSender: "m365", Agent: "eu"}
	if err := s.SaveRouteIf(ctx, &st, read, tr, nil, []RouteInterval{iv}); err != nil || st.Version != read+1 {
		t.Fatalf("first save: %v, version %d", err, st.Version)
	}
	// Another agent decided from the same version: refused, nothing stored.
	other := RouteState{Route: "otp", ActiveSender: "backup", State: "backup", Since: t0}
	tr2 := &RouteTransition{Route: "otp", At: t0, FromState: "primary", ToState: "backup", Agent: "us"}
	if err := s.SaveRouteIf(ctx, &other, read, tr2, nil, nil); !errors.Is(err, ErrRouteConflict) {
		t.Fatalf("stale version: %v, want ErrRouteConflict", err)
	}
	// The same interval counted twice: refused.
	if err := s.SaveRouteIf(ctx, &st, st.Version, nil, nil, []RouteInterval{iv}); !errors.Is(err, ErrRouteConflict) {
		t.Fatalf("interval counted twice: %v, want ErrRouteConflict", err)
	}
	got, _, _ := s.Route(ctx, "otp")
	trs, _ := s.Transitions(ctx, "otp", time.Time{}, 0)
	ivs, _ := s.RouteIntervals(ctx, "otp", time.Time{})
	if got.ActiveSender != "m365" || got.BadRounds != 1 || len(trs) != 1 || trs[0].Agent != "eu" || len(ivs) != 1 ||
		!reflect.DeepEqual(ivs[0].BadAgents, []string{"eu"}) || ivs[0].Quorum != 2 || ivs[0].Leader != "eu" || !ivs[0].Start.Equal(t0) {
		t.Fatalf("stored %+v, transitions %+v, intervals %+v", got, trs, ivs)
	}
}

// TestElection: one agent holds a route's lock while its session lives;
// presence tells who runs; a second agent of the same name is refused;
// SQLite has no election.
func TestElection(t *testing.T) {
	ctx := context.Background()
	if !onPostgres() {
		s, _ := openTest(t)
		if _, err := s.Election("eu"); !errors.Is(err, ErrNoElection) {
			t.Fatalf("SQLite election: %v", err)
		}
	}
	p := openPostgresTest(t)
	eu, _ := p.Election("eu")
	us, _ := p.Election("us")
	defer us.Close()
	if ok, err := eu.Leader(ctx, "otp"); !ok || err != nil {
		t.Fatalf("eu first: %v %v", ok, err)
	}
	if ok, err := us.Leader(ctx, "otp"); ok || err != nil {
		t.Fatalf("us while eu leads: %v %v", ok, err)
	}
	if ok, _ := us.Leader(ctx, "other-route"); !ok {
		t.Fatal("another route's lock is separate")
	}
	if ok, _ := eu.Leader(ctx, "otp"); !ok {
		t.Fatal("eu lost the lead it holds")
	}
	live, err := us.Live(ctx, []string{"eu", "us", "gone"})
	if err != nil || !live["eu"] || !live["us"] || live["gone"] {
		t.Fatalf("live %v %v", live, err)
	}
	twin, _ := p.Election("eu")
	if _, err := twin.Leader(ctx, "otp"); err == nil || !strings.Contains(err.Error(), `another running agent is named "eu"`) {
		t.Fatalf("a second agent named eu: %v", err)
	}
	eu.Close() // an agent that stops hands its locks over at once
	if ok, err := us.Leader(ctx, "otp"); !ok || err != nil {
		t.Fatalf("us after eu's session ended: %v %v", ok, err)
	}
	if live, _ := us.Live(ctx, []string{"eu"}); live["eu"] {
		t.Fatal("eu still live after its session ended")
	}
}

// TestOutboxClaimedOnce: agents sharing a PostgreSQL store deliver the
// outbox together; each notification goes out once, and each notifier's
// in order.
func TestOutboxClaimedOnce(t *testing.T) {
	ctx := context.Background()
	a := openPostgresTest(t)
	b, err := OpenPostgres(ctx, a.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var out []OutboxEntry
	for i := range 40 {
		out = append(out, OutboxEntry{Notifier: []string{"webhook:a", "webhook:b"}[i%2], Kind: "alert", Payload: []byte(fmt.Sprintf(`{"i":%d}`, i))})
	}
	if err := a.Enqueue(ctx, out); err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		sent []OutboxEntry
		wg   sync.WaitGroup
	)
	for _, agent := range []*DB{a, b} {
		wg.Go(func() {
			for {
				due, err := agent.DueOutbox(ctx, time.Now(), 3)
				if err != nil {
					t.Error(err)
					return
				}
				if len(due) == 0 {
					if n, _ := agent.UndeliveredCount(ctx); n == 0 {
						return
					}
					time.Sleep(time.Millisecond)
					continue
				}
				for _, e := range due {
					mu.Lock()
					sent = append(sent, e)
					mu.Unlock()
					if err := agent.Delivered(ctx, e.ID, time.Now()); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	seen := map[int64]bool{}
	last := map[string]int64{}
	for _, e := range sent {
		if seen[e.ID] {
			t.Errorf("notification %d sent twice", e.ID)
		}
		seen[e.ID] = true
		if e.ID < last[e.Notifier] {
			t.Errorf("%s: %d sent after %d", e.Notifier, e.ID, last[e.Notifier])
		}
		last[e.Notifier] = e.ID
	}
	if len(seen) != 40 {
		t.Errorf("%d of 40 sent", len(seen))
	}
}

// TestElectionSilentLeader: a leader that stops speaking (its host hung or
// cut off, its TCP connection still open) loses the lead once PostgreSQL
// ends its silent session, and another agent takes it.
func TestElectionSilentLeader(t *testing.T) {
	ctx := context.Background()
	p := openPostgresTest(t)
	eu, _ := p.Election("eu")
	eu.silent = time.Second
	defer eu.Close()
	us, _ := p.Election("us")
	defer us.Close()
	if ok, err := eu.Leader(ctx, "otp"); !ok || err != nil {
		t.Fatalf("eu: %v %v", ok, err)
	}
	// eu says nothing more; us keeps asking.
	deadline := time.Now().Add(time.Minute)
	for {
		ok, err := us.Leader(ctx, "otp")
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("us never got the lead of a silent leader")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ok, _ := eu.Leader(ctx, "otp"); ok {
		t.Error("the silent leader still thinks it leads")
	}
}
