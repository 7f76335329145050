package probe

import (
	"time"
)

// storeHealth remembers whether the store took the engine's last write:
// a store that refuses writes makes the prober unready (attempts cannot be
// kept), and it recovers with the first write that succeeds.
type storeHealth struct {
	since  time.Time // first failure of the current streak; zero when healthy
	reason string
}

// wrote records the result of one store write; the caller holds e.mu.
func (h *storeHealth) wrote(err error) {
	if err == nil {
		h.since, h.reason = time.Time{}, ""
		return
	}
	if h.since.IsZero() {
		h.since = time.Now()
	}
	h.reason = err.Error()
}

// storeWrote records a store write's result.
func (e *Engine) storeWrote(err error) {
	e.mu.Lock()
	e.storeHealth.wrote(err)
	e.mu.Unlock()
}

// StoreDown reports whether the store refused the engine's last write,
// since when and why.
func (e *Engine) StoreDown() (down bool, since time.Time, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.storeHealth.since.IsZero(), e.storeHealth.since, e.storeHealth.reason
}

// Stalled lists the probes whose scheduled run is more than grace overdue
// at now: the scheduler stopped firing them.
func (s *Scheduler) Stalled(now time.Time, grace time.Duration) []string {
	var out []string
	for _, e := range s.cron.Entries() {
		if !e.Next.IsZero() && now.Sub(e.Next) > grace {
			out = append(out, s.names[e.ID])
		}
	}
	return out
}
