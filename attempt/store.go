package attempt

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is wrapped by Store.Get for an unknown ID.
var ErrNotFound = errors.New("attempt not found")

// Store keeps attempts. The engine stores every attempt as pending before
// it sends anything, so a crash between send and receive loses nothing:
// on restart, Pending returns what the watchers must resume.
// reports/store implements it (SQLite, PostgreSQL).
type Store interface {
	// Create inserts a new attempt (normally pending). IDs are unique.
	Create(ctx context.Context, a *Attempt) error
	// Update replaces the stored attempt with the same ID.
	Update(ctx context.Context, a *Attempt) error
	// Get returns one attempt, or an error wrapping ErrNotFound.
	Get(ctx context.Context, id string) (*Attempt, error)
	// Pending returns the attempts agent must resume: those whose outcome
	// is not final, oldest first. Where several agents share the store
	// (PostgreSQL) only agent's own; where one agent owns it (SQLite)
	// all of them, whatever name stored them.
	Pending(ctx context.Context, agent string) ([]*Attempt, error)
	// List returns attempts matching f, oldest first.
	List(ctx context.Context, f Filter) ([]*Attempt, error)
}

// Filter selects attempts by creation time and names; zero fields match all.
type Filter struct {
	From, To time.Time // CreatedAt in [From, To)
	Probe    string
	Sender   string
	Mailbox  string
	RoundID  string
	Agent    string
	Outcome  Outcome
	Limit    int // 0: no limit
}
