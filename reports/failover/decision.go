// Package failover decides, per route, which sender OTP mail should leave
// through. A state machine per route — primary → failing_over → backup →
// recovering → primary — fed with probe rounds: it leaves the primary after
// N consecutive rounds unhealthy at ≥ K providers (never for a backup that
// is itself unhealthy) and returns after M consecutive healthy rounds and a
// minimum hold. A manual pin overrides it. State, transitions and their
// notifications are stored together, so a restart continues where it
// stopped.
package failover

import (
	"time"

	"github.com/otpprobe/otpprobe/reports/store"
)

// Route states.
const (
	StatePrimary     = "primary"      // the primary is active and healthy enough
	StateFailingOver = "failing_over" // the primary is unhealthy; no healthy backup yet, so it stays active
	StateBackup      = "backup"       // a backup is active
	StateRecovering  = "recovering"   // the primary is healthy again; waiting out the minimum hold
	StatePinned      = "pinned"       // an operator chose the sender
)

// Decision is a route's current choice: what the OTP application reads
// from GET /api/v1/routes/{route}. Since is when the active sender became
// active.
type Decision struct {
	Route        string   `json:"route"`
	ActiveSender string   `json:"active_sender"`
	State        string   `json:"state"`
	Since        string   `json:"since"`
	Reason       string   `json:"reason"`
	Diagnosis    string   `json:"diagnosis"`
	Evidence     []string `json:"evidence"`
	Primary      string   `json:"primary"`
	Pinned       bool     `json:"pinned"`
}

// Transition is a change of a route's state, as sent to the transition
// webhooks and exec hooks.
type Transition struct {
	Type       string   `json:"type"` // "route_transition"
	Agent      string   `json:"agent"`
	Route      string   `json:"route"`
	At         string   `json:"at"`
	FromState  string   `json:"from_state"`
	ToState    string   `json:"to_state"`
	FromSender string   `json:"from_sender"`
	ToSender   string   `json:"to_sender"`
	Decision   Decision `json:"decision"`
	// By and Source name who pinned or unpinned the route and from where
	// (omitted for the state machine's own transitions).
	By     string `json:"by,omitempty"`
	Source string `json:"source,omitempty"`
}

func decision(st store.RouteState, primary string, pinned bool) Decision {
	ev := st.Evidence
	if ev == nil {
		ev = []string{}
	}
	return Decision{
		Route: st.Route, ActiveSender: st.ActiveSender, State: st.State,
		Since: st.Since.UTC().Format(time.RFC3339Nano), Reason: st.Reason, Diagnosis: st.Diagnosis,
		Evidence: ev, Primary: primary, Pinned: pinned,
	}
}
