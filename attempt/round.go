package attempt

import "time"

// Round is one run of a probe: one attempt per sender × mailbox, all
// carrying the round's ID. Reports group attempts by that ID; they never
// guess rounds back from timestamps.
type Round struct {
	ID        string    // sortable (UUIDv7)
	Probe     string    //
	StartedAt time.Time // when the run began, UTC, ms
	Attempts  []*Attempt
}
