// Package health answers the readiness question — is this prober doing
// its job right now? — from checks the daemon registers: watchers that
// cannot reach their mailbox, a scheduler that stopped firing, a store
// that refuses writes. Liveness (/healthz) stays a plain "ok"; readiness
// (/readyz) says what is down.
package health

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Problem is one thing that is down.
type Problem struct {
	Component string    `json:"component"` // watcher, scheduler, store
	Name      string    `json:"name"`      // which one, e.g. gmail/INBOX
	Reason    string    `json:"reason"`    // the last error; never holds secrets
	Since     time.Time `json:"since"`     // when it went down
}

// Check reports the problems of one component at now.
type Check func(now time.Time) []Problem

// Checker runs the registered checks.
type Checker struct {
	now    func() time.Time
	mu     sync.Mutex
	checks []Check
}

// New returns a Checker with no checks; now is the clock (nil: time.Now).
func New(now func() time.Time) *Checker {
	if now == nil {
		now = time.Now
	}
	return &Checker{now: now}
}

// Add registers a check.
func (c *Checker) Add(check Check) {
	c.mu.Lock()
	c.checks = append(c.checks, check)
	c.mu.Unlock()
}

// Problems runs every check, ordered by component and name.
func (c *Checker) Problems() []Problem {
	c.mu.Lock()
	checks := slices.Clone(c.checks)
	c.mu.Unlock()
	now := c.now()
	var out []Problem
	for _, check := range checks {
		out = append(out, check(now)...)
	}
	slices.SortFunc(out, func(a, b Problem) int {
		if c := strings.Compare(a.Component, b.Component); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// Status is the /readyz body.
type Status struct {
	Ready    bool      `json:"ready"`
	Problems []Problem `json:"problems"`
}

// Handler serves /readyz: 200 with {"ready":true,"problems":[]}, or 503
// with the list of what is down.
func (c *Checker) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := Status{Ready: true, Problems: c.Problems()}
		if st.Problems == nil {
			st.Problems = []Problem{}
		}
		code := http.StatusOK
		if len(st.Problems) > 0 {
			st.Ready, code = false, http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(st)
	})
}
