package probe

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/targets"
)

// historyStore records every Update and holds the submission's pending
// write (submitted, not yet seen) until released.
type historyStore struct {
	bounceTestStore
	hist             []attempt.Attempt
	entered, release chan struct{}
	gated            bool
}

func (s *historyStore) Update(ctx context.Context, a *attempt.Attempt) error {
	s.mu.Lock()
	gate := !s.gated && a.Outcome == attempt.OutcomePending && a.SeenAt.IsZero() && !a.SubmittedAt.IsZero()
	s.gated = s.gated || gate
	s.mu.Unlock()
	if gate {
		close(s.entered)
		<-s.release
	}
	s.mu.Lock()
	s.hist = append(s.hist, *a)
	s.mu.Unlock()
	return s.bounceTestStore.Update(ctx, a)
}

// An arrival while the submission's pending copy is being written: the
// copies land newest last, so the stored row never loses the arrival (a
// crash then would turn an inbox into lost), and the final row is last.
func TestPendingWritesKeepOrder(t *testing.T) {
	st := &historyStore{bounceTestStore: bounceTestStore{m: map[string]attempt.Attempt{}}, entered: make(chan struct{}), release: make(chan struct{})}
	cfg := &targets.Config{Mailboxes: []targets.Mailbox{{Name: "m"}}}
	e := &Engine{cfg: cfg, opts: Options{Store: st}, log: slog.New(slog.DiscardHandler),
		flights: newInflight()}
	a := &attempt.Attempt{ID: "id-fff", Token: "fff", Mailbox: "m", Outcome: attempt.OutcomePending}
	la := newFlight(a, true)
	e.flights.add(la)
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		e.finishSend(context.Background(), a, &SendResult{SubmittedAt: time.Now(), Reply: "250 ok"}, nil)
	}()
	<-st.entered
	arrived := make(chan struct{})
	go func() {
		defer close(arrived)
		e.onArrival(RoleInbox, Arrival{Token: "fff", Folder: "INBOX", SeenAt: time.Now(), Header: []byte("Subject: [fff]\r\n\r\n")})
	}()
	for seen := false; !seen; {
		e.mu.Lock()
		seen = la.arrived
		e.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let an unserialized arrival write land first
	close(st.release)
	<-sent
	<-arrived
	st.mu.Lock()
	defer st.mu.Unlock()
	seenStored := false
	for i, h := range st.hist {
		switch {
		case !h.SeenAt.IsZero():
			seenStored = true
		case seenStored:
			t.Errorf("write %d (%s) lost the arrival stored before it", i, h.Outcome)
		}
	}
	if last := st.hist[len(st.hist)-1]; last.Outcome != attempt.OutcomeInbox {
		t.Errorf("last write %s, want the final inbox; history %d writes", last.Outcome, len(st.hist))
	}
}
