package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// migrateRoutesAndOutbox is migration 2: failover route state, its
// transition history, manual pins, alert state and the notification
// outbox. Evidence columns hold JSON arrays of attempt IDs.
var migrateRoutesAndOutbox = execAll(
	`CREATE TABLE route_state (
		route         TEXT    NOT NULL PRIMARY KEY,
		active_sender TEXT    NOT NULL,
		state         TEXT    NOT NULL,
		since         INTEGER NOT NULL,
		reason        TEXT    NOT NULL,
		diagnosis     TEXT    NOT NULL,
		evidence      TEXT    NOT NULL,
		bad_rounds    INTEGER NOT NULL,
		good_rounds   INTEGER NOT NULL,
		version       INTEGER NOT NULL,
		updated_at    INTEGER NOT NULL
	) STRICT`,
	`CREATE TABLE route_transitions (
		id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
		route       TEXT    NOT NULL,
		at          INTEGER NOT NULL,
		from_state  TEXT    NOT NULL,
		to_state    TEXT    NOT NULL,
		from_sender TEXT    NOT NULL,
		to_sender   TEXT    NOT NULL,
		reason      TEXT    NOT NULL,
		diagnosis   TEXT    NOT NULL,
		evidence    TEXT    NOT NULL
	) STRICT`,
	`CREATE INDEX route_transitions_route_at ON route_transitions (route, at)`,
	`CREATE TABLE route_pins (
		route  TEXT    NOT NULL PRIMARY KEY,
		sender TEXT    NOT NULL,
		reason TEXT    NOT NULL,
		at     INTEGER NOT NULL
	) STRICT`,
	`CREATE TABLE alerts (
		key         TEXT    NOT NULL PRIMARY KEY,
		name        TEXT    NOT NULL,
		status      TEXT    NOT NULL CHECK (status IN ('firing', 'resolved')),
		labels      TEXT    NOT NULL,
		annotations TEXT    NOT NULL,
		evidence    TEXT    NOT NULL,
		starts_at   INTEGER NOT NULL,
		ends_at     INTEGER,
		updated_at  INTEGER NOT NULL
	) STRICT`,
	`CREATE TABLE outbox (
		id           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
		notifier     TEXT    NOT NULL,
		kind         TEXT    NOT NULL,
		payload      TEXT    NOT NULL,
		created_at   INTEGER NOT NULL,
		next_at      INTEGER NOT NULL,
		tries        INTEGER NOT NULL,
		last_error   TEXT    NOT NULL,
		delivered_at INTEGER
	) STRICT`,
	`CREATE INDEX outbox_undelivered ON outbox (next_at) WHERE delivered_at IS NULL`,
)

// migrateRouteAudit (version 5) records who changed a route by hand: the
// API token's name (or "cli:USER" for otpprobe route) and the client's
// address, on the pin and on the transition it caused.
var migrateRouteAudit = execAll(
	`ALTER TABLE route_pins ADD COLUMN actor TEXT NOT NULL DEFAULT ''`,
	`ALTER TABLE route_pins ADD COLUMN source TEXT NOT NULL DEFAULT ''`,
	`ALTER TABLE route_transitions ADD COLUMN actor TEXT NOT NULL DEFAULT ''`,
	`ALTER TABLE route_transitions ADD COLUMN source TEXT NOT NULL DEFAULT ''`,
)

// RouteState is a failover route's current decision, with the streaks it
// was decided from, so a restart continues counting where it stopped.
type RouteState struct {
	Route        string
	ActiveSender string
	State        string
	Since        time.Time
	Reason       string
	Diagnosis    string
	Evidence     []string // attempt IDs
	BadRounds    int      // consecutive unhealthy rounds of the primary
	GoodRounds   int      // consecutive healthy rounds of the primary
	Version      int64    // bumped on every save; the API's ETag
}

// RouteTransition is one recorded change of a route's state.
type RouteTransition struct {
	ID                   int64
	Route                string
	At                   time.Time
	FromState, ToState   string
	FromSender, ToSender string
	Reason               string
	Diagnosis            string
	Evidence             []string
	// Actor and Source name who made a manual change (pin, unpin) and from
	// where; empty for the state machine's own decisions.
	Actor, Source string
	// Agent is the agent that took the transition (the deciding one when
	// agents share the store); empty before transitions recorded it.
	Agent string
}

// RoutePin is a manual override: the route uses Sender until unpinned.
type RoutePin struct {
	Route  string
	Sender string
	Reason string
	At     time.Time
	Actor  string // the API token's name, or cli:USER
	Source string // the client's address, or "local"
}

// Route returns the stored state of route; ok is false when none is stored.
func (s *SQLite) Route(ctx context.Context, route string) (st RouteState, ok bool, err error) {
	var since int64
	var evidence string
	err = s.r.QueryRowContext(ctx, `SELECT route, active_sender, state, since, reason, diagnosis, evidence,
		bad_rounds, good_rounds, version FROM route_state WHERE route = ?`, route).Scan(
		&st.Route, &st.ActiveSender, &st.State, &since, &st.Reason, &st.Diagnosis, &evidence,
		&st.BadRounds, &st.GoodRounds, &st.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return RouteState{}, false, nil
	}
	if err != nil {
		return RouteState{}, false, fmt.Errorf("store: route %q: %w", route, err)
	}
	st.Since = time.UnixMilli(since).UTC()
	if err := json.Unmarshal([]byte(evidence), &st.Evidence); err != nil {
		return RouteState{}, false, fmt.Errorf("store: route %q: evidence: %w", route, err)
	}
	return st, true, nil
}

// SaveRoute stores st, and in the same transaction records tr (when not
// nil) and queues out, so a transition is never recorded without its
// notifications or notified without being recorded. st.Version is set to
// the stored version.
func (s *SQLite) SaveRoute(ctx context.Context, st *RouteState, tr *RouteTransition, out []OutboxEntry) error {
	evidence, err := jsonList(st.Evidence)
	if err != nil {
		return err
	}
	return s.tx(ctx, "save route "+st.Route, func(tx *sql.Tx) error {
		now := s.now().UnixMilli()
		row := tx.QueryRowContext(ctx, `INSERT INTO route_state (route, active_sender, state, since, reason, diagnosis,
			evidence, bad_rounds, good_rounds, version, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)
			ON CONFLICT (route) DO UPDATE SET active_sender = excluded.active_sender, state = excluded.state,
			since = excluded.since, reason = excluded.reason, diagnosis = excluded.diagnosis,
			evidence = excluded.evidence, bad_rounds = excluded.bad_rounds, good_rounds = excluded.good_rounds,
			version = route_state.version + 1, updated_at = excluded.updated_at
			RETURNING version`,
			st.Route, st.ActiveSender, st.State, st.Since.UnixMilli(), st.Reason, st.Diagnosis, evidence,
			st.BadRounds, st.GoodRounds, now)
		if err := row.Scan(&st.Version); err != nil {
			return err
		}
		if err := insertTransition(ctx, tx, tr); err != nil {
			return err
		}
		return enqueue(ctx, tx, now, out)
	})
}

// insertTransition records tr (nothing when nil) and sets its ID.
func insertTransition(ctx context.Context, tx *sql.Tx, tr *RouteTransition) error {
	if tr == nil {
		return nil
	}
	ev, err := jsonList(tr.Evidence)
	if err != nil {
		return err
	}
	return tx.QueryRowContext(ctx, `INSERT INTO route_transitions (route, at, from_state, to_state,
		from_sender, to_sender, reason, diagnosis, evidence, actor, source, agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING id`,
		tr.Route, tr.At.UnixMilli(), tr.FromState, tr.ToState, tr.FromSender, tr.ToSender, tr.Reason, tr.Diagnosis, ev,
		tr.Actor, tr.Source, tr.Agent).Scan(&tr.ID)
}

// Transitions returns route's transitions at or after since, oldest first,
// at most limit (0: all).
func (s *SQLite) Transitions(ctx context.Context, route string, since time.Time, limit int) ([]RouteTransition, error) {
	if limit <= 0 {
		limit = math.MaxInt32 // all (a negative LIMIT is SQLite's only)
	}
	// The newest limit of them, returned oldest first.
	q := `SELECT * FROM (SELECT ` + transitionColumns + ` FROM route_transitions WHERE route = ? AND at >= ?
		ORDER BY id DESC LIMIT ?) AS newest ORDER BY id`
	rows, err := s.r.QueryContext(ctx, q, route, since.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("store: transitions of %q: %w", route, err)
	}
	out, err := scanTransitions(rows)
	if err != nil {
		return nil, fmt.Errorf("store: transitions of %q: %w", route, err)
	}
	return out, nil
}

// transitionColumns are what scanTransitions reads, in its order.
const transitionColumns = `id, route, at, from_state, to_state, from_sender, to_sender, reason, diagnosis, evidence, actor, source, agent`

// scanTransitions reads rows of transitionColumns and closes them.
func scanTransitions(rows *sql.Rows) ([]RouteTransition, error) {
	defer rows.Close()
	var out []RouteTransition
	for rows.Next() {
		var t RouteTransition
		var at int64
		var ev string
		if err := rows.Scan(&t.ID, &t.Route, &at, &t.FromState, &t.ToState, &t.FromSender, &t.ToSender,
			&t.Reason, &t.Diagnosis, &ev, &t.Actor, &t.Source, &t.Agent); err != nil {
			return nil, err
		}
		t.At = time.UnixMilli(at).UTC()
		if err := json.Unmarshal([]byte(ev), &t.Evidence); err != nil {
			return nil, fmt.Errorf("evidence of transition %d: %w", t.ID, err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// SetPin pins a route to a sender (replacing any pin).
func (s *SQLite) SetPin(ctx context.Context, p RoutePin) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO route_pins (route, sender, reason, at, actor, source) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (route) DO UPDATE SET sender = excluded.sender, reason = excluded.reason, at = excluded.at,
		actor = excluded.actor, source = excluded.source`,
		p.Route, p.Sender, p.Reason, p.At.UnixMilli(), p.Actor, p.Source)
	if err != nil {
		return fmt.Errorf("store: pin route %q: %w", p.Route, err)
	}
	return nil
}

// DeletePin removes a route's pin; removing a missing pin is not an error.
func (s *SQLite) DeletePin(ctx context.Context, route string) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM route_pins WHERE route = ?`, route); err != nil {
		return fmt.Errorf("store: unpin route %q: %w", route, err)
	}
	return nil
}

// Pins returns every pin by route.
func (s *SQLite) Pins(ctx context.Context) (map[string]RoutePin, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT route, sender, reason, at, actor, source FROM route_pins`)
	if err != nil {
		return nil, fmt.Errorf("store: pins: %w", err)
	}
	defer rows.Close()
	out := map[string]RoutePin{}
	for rows.Next() {
		var p RoutePin
		var at int64
		if err := rows.Scan(&p.Route, &p.Sender, &p.Reason, &at, &p.Actor, &p.Source); err != nil {
			return nil, fmt.Errorf("store: pins: %w", err)
		}
		p.At = time.UnixMilli(at).UTC()
		out[p.Route] = p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: pins: %w", err)
	}
	return out, nil
}

// tx runs fn in a write transaction.
func (s *SQLite) tx(ctx context.Context, op string, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if err := fn(tx); err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	return nil
}

// jsonList encodes a list of IDs, [] for none.
func jsonList(ids []string) (string, error) {
	if ids == nil {
		ids = []string{}
	}
	b, err := json.Marshal(ids)
	return string(b), err
}
