package probe

import (
	"context"
	"sync"

	"github.com/otpprobe/otpprobe/attempt"
)

// flight is one attempt the engine has not published yet.
//
// The life of a flight, every change under Engine.mu:
//
//	created (stored pending) ──► sending ──► submitted ──► decided ──► published
//	                                 │            ▲   │
//	            arrival recorded ────┘ (stored    │   └─ arrival, DSN or deadline
//	            pending; the send decides)        │
//	resumed at start (not sending) ───────────────┘
//
// Invariants:
//  1. A flight is matchable (in inflight.byToken) from its pending row
//     until one party decides it: the submission, a watcher's arrival, a
//     DSN or the sweeper. The decider takes it out with inflight.take and
//     finalizes it outside the lock; nobody else touches a afterwards.
//  2. While sending, only the submission decides. An arrival is recorded
//     (arrived, role, stored pending) and left to it; a DSN waits on sent.
//  3. Pending rows are written in the order they were taken and never
//     after the final row (rows.close before the final Update).
//  4. done is closed, and the flight leaves inflight.byID, only after the
//     final row is stored and the observers ran: Wait never returns early.
type flight struct {
	a       *attempt.Attempt
	sending bool          // a submission is in progress in this process
	arrived bool          // the canary was seen (recorded in a, and stored)
	role    string        // where it was seen: RoleInbox or RoleSpam
	sent    chan struct{} // closed when the submission ends (endSend)
	done    chan struct{} // closed once published (invariant 4)
	rows    pendingRows
}

func newFlight(a *attempt.Attempt, sending bool) *flight {
	f := &flight{a: a, sending: sending, done: make(chan struct{})}
	if sending {
		f.sent = make(chan struct{})
	}
	return f
}

// endSend marks the submission over and wakes a DSN waiting for it.
func (f *flight) endSend() {
	f.sending = false
	if f.sent != nil {
		close(f.sent)
		f.sent = nil
	}
}

// inflight indexes the flights: by token while they can still be matched,
// by ID until they are published.
type inflight struct {
	byToken map[string]*flight
	byID    map[string]*flight
}

func newInflight() inflight {
	return inflight{byToken: map[string]*flight{}, byID: map[string]*flight{}}
}

func (in inflight) add(f *flight) {
	in.byToken[f.a.Token] = f
	in.byID[f.a.ID] = f
}

// match is the undecided flight of token, or nil.
func (in inflight) match(token string) *flight { return in.byToken[token] }

// take removes f from matching: its decider is about to finalize it.
func (in inflight) take(f *flight) { delete(in.byToken, f.a.Token) }

// publish ends f (invariant 4).
func (in inflight) publish(f *flight) {
	delete(in.byID, f.a.ID)
	close(f.done)
}

// pendingRows orders the pending rows of one flight. While it is sending,
// the submission and an arrival both store pending copies with the
// engine's lock let go: these keep the newest one last and none after the
// final one.
type pendingRows struct {
	taken   uint64     // copies taken, under Engine.mu
	mu      sync.Mutex // held while one is written
	written uint64     // the newest written; ^0 once closed
}

// snapshot copies the attempt for a pending write; the caller holds e.mu.
func (f *flight) snapshot() (attempt.Attempt, uint64) {
	f.rows.taken++
	return *f.a, f.rows.taken
}

// storePending writes snapshot n unless a newer one, or the final
// outcome, was written already.
func (e *Engine) storePending(ctx context.Context, f *flight, snap attempt.Attempt, n uint64) error {
	f.rows.mu.Lock()
	defer f.rows.mu.Unlock()
	if n <= f.rows.written {
		return nil
	}
	f.rows.written = n
	err := e.opts.Store.Update(ctx, &snap)
	e.storeWrote(err)
	return err
}

// close waits for a pending write in flight and refuses later ones: the
// final outcome is about to be stored.
func (r *pendingRows) close() {
	r.mu.Lock()
	r.written = ^uint64(0)
	r.mu.Unlock()
}
