package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	sqlite3 "modernc.org/sqlite/lib"
)

// migrateMultiAgent (version 8) is what agents sharing one PostgreSQL
// store need to take one route decision together: every agent's verdict
// on each of its rounds (route_rounds), the intervals the deciding agent
// counted from them (route_intervals, one row per route, sender and
// interval: an interval is never counted twice) and the agent that took
// each transition. On SQLite the tables stay empty: one agent decides
// from its own rounds as before.
var migrateMultiAgent = execAll(
	`CREATE TABLE route_rounds (
		id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
		route      TEXT    NOT NULL,
		sender     TEXT    NOT NULL,
		round_id   TEXT    NOT NULL,
		agent      TEXT    NOT NULL,
		started_at INTEGER NOT NULL,
		bad        INTEGER NOT NULL CHECK (bad IN (0, 1)),
		unhealthy  TEXT    NOT NULL,
		providers  INTEGER NOT NULL,
		diagnosis  TEXT    NOT NULL,
		evidence   TEXT    NOT NULL,
		UNIQUE (route, sender, round_id)
	) STRICT`,
	`CREATE INDEX route_rounds_route_started ON route_rounds (route, started_at)`,
	`CREATE TABLE route_intervals (
		id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
		route      TEXT    NOT NULL,
		sender     TEXT    NOT NULL,
		start      INTEGER NOT NULL,
		agents     TEXT    NOT NULL,
		bad_agents TEXT    NOT NULL,
		quorum     INTEGER NOT NULL,
		bad        INTEGER NOT NULL CHECK (bad IN (0, 1)),
		rounds     TEXT    NOT NULL,
		leader     TEXT    NOT NULL,
		decided_at INTEGER NOT NULL,
		UNIQUE (route, sender, start)
	) STRICT`,
	`ALTER TABLE route_transitions ADD COLUMN agent TEXT NOT NULL DEFAULT ''`,
)

// RouteRound is one agent's verdict on one of its rounds of a route's
// sender: what the deciding agent counts.
type RouteRound struct {
	Route, Sender string
	RoundID       string
	Agent         string
	StartedAt     time.Time
	Bad           bool
	Unhealthy     []string // providers that did not get the canary in time
	Providers     int      // providers the round reached
	Diagnosis     string
	Evidence      []string // attempt IDs
}

// RouteInterval is one interval of a route's sender as the deciding
// agent counted it: which agents reported a round in it, which of them
// saw it unhealthy, the quorum that applied and the verdict.
type RouteInterval struct {
	Route, Sender string
	Start         time.Time
	Agents        []string // agents that reported a round starting in the interval
	BadAgents     []string // those whose round was unhealthy
	Quorum        int
	Bad           bool
	Rounds        []string // the round IDs counted, one per agent
	Leader        string   // the agent that counted it
	DecidedAt     time.Time
}

// ErrRouteConflict is returned by SaveRouteIf when the route's stored
// version is no longer the one the decision was taken from: another
// agent saved it meanwhile, and the decision must be dropped.
var ErrRouteConflict = errors.New("route state changed meanwhile (another agent decided)")

// RecordRouteRound stores an agent's verdict on a round; a verdict already
// stored for the same round is kept.
func (s *DB) RecordRouteRound(ctx context.Context, r RouteRound) error {
	unhealthy, err := jsonList(r.Unhealthy)
	if err != nil {
		return err
	}
	evidence, err := jsonList(r.Evidence)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO route_rounds (route, sender, round_id, agent, started_at, bad, unhealthy,
		providers, diagnosis, evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (route, sender, round_id) DO NOTHING`,
		r.Route, r.Sender, r.RoundID, r.Agent, r.StartedAt.UnixMilli(), r.Bad, unhealthy, r.Providers, r.Diagnosis, evidence)
	if err != nil {
		return fmt.Errorf("store: record round %s of %s for route %s: %w", r.RoundID, r.Sender, r.Route, err)
	}
	return nil
}

// RouteRounds returns every agent's verdicts on rounds of route started at
// or after since, oldest first.
func (s *DB) RouteRounds(ctx context.Context, route string, since time.Time) ([]RouteRound, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT route, sender, round_id, agent, started_at, bad, unhealthy, providers,
		diagnosis, evidence FROM route_rounds WHERE route = ? AND started_at >= ? ORDER BY started_at, round_id`,
		route, since.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store: rounds of route %s: %w", route, err)
	}
	defer rows.Close()
	var out []RouteRound
	for rows.Next() {
		var r RouteRound
		var started int64
		var unhealthy, evidence string
		if err := rows.Scan(&r.Route, &r.Sender, &r.RoundID, &r.Agent, &started, &r.Bad, &unhealthy, &r.Providers,
			&r.Diagnosis, &evidence); err != nil {
			return nil, fmt.Errorf("store: rounds of route %s: %w", route, err)
		}
		r.StartedAt = time.UnixMilli(started).UTC()
		if err := errors.Join(json.Unmarshal([]byte(unhealthy), &r.Unhealthy), json.Unmarshal([]byte(evidence), &r.Evidence)); err != nil {
			return nil, fmt.Errorf("store: rounds of route %s: %w", route, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: rounds of route %s: %w", route, err)
	}
	return out, nil
}

// RouteIntervals returns the intervals of route counted at or after
// since (by their start), oldest first.
func (s *DB) RouteIntervals(ctx context.Context, route string, since time.Time) ([]RouteInterval, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT route, sender, start, agents, bad_agents, quorum, bad, rounds, leader, decided_at
		FROM route_intervals WHERE route = ? AND start >= ? ORDER BY start, sender`, route, since.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store: intervals of route %s: %w", route, err)
	}
	defer rows.Close()
	var out []RouteInterval
	for rows.Next() {
		var iv RouteInterval
		var start, decided int64
		var agents, bad, rounds string
		if err := rows.Scan(&iv.Route, &iv.Sender, &start, &agents, &bad, &iv.Quorum, &iv.Bad, &rounds, &iv.Leader, &decided); err != nil {
			return nil, fmt.Errorf("store: intervals of route %s: %w", route, err)
		}
		iv.Start, iv.DecidedAt = time.UnixMilli(start).UTC(), time.UnixMilli(decided).UTC()
		if err := errors.Join(json.Unmarshal([]byte(agents), &iv.Agents), json.Unmarshal([]byte(bad), &iv.BadAgents),
			json.Unmarshal([]byte(rounds), &iv.Rounds)); err != nil {
			return nil, fmt.Errorf("store: intervals of route %s: %w", route, err)
		}
		out = append(out, iv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: intervals of route %s: %w", route, err)
	}
	return out, nil
}

// SaveRouteIf is SaveRoute for agents sharing the store: st is stored
// only if the stored version is still version (what the decision was
// taken from), together with tr, out and the intervals counted; else
// nothing is and the error wraps ErrRouteConflict. An interval already
// counted is a conflict too. st.Version is set to the new version.
func (s *DB) SaveRouteIf(ctx context.Context, st *RouteState, version int64, tr *RouteTransition, out []OutboxEntry, intervals []RouteInterval) error {
	evidence, err := jsonList(st.Evidence)
	if err != nil {
		return err
	}
	return s.tx(ctx, "save route "+st.Route, func(tx *sql.Tx) error {
		now := s.now().UnixMilli()
		var v int64
		err := tx.QueryRowContext(ctx, `UPDATE route_state SET active_sender = ?, state = ?, since = ?, reason = ?,
			diagnosis = ?, evidence = ?, bad_rounds = ?, good_rounds = ?, version = version + 1, updated_at = ?
			WHERE route = ? AND version = ? RETURNING version`,
			st.ActiveSender, st.State, st.Since.UnixMilli(), st.Reason, st.Diagnosis, evidence, st.BadRounds, st.GoodRounds, now,
			st.Route, version).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w (version %d)", ErrRouteConflict, version)
		}
		if err != nil {
			return err
		}
		for _, iv := range intervals {
			if err := insertInterval(ctx, tx, iv, now); err != nil {
				if isConstraint(err, sqlite3.SQLITE_CONSTRAINT_UNIQUE) || isUniqueViolation(err) {
					return fmt.Errorf("%w (interval %s of %s counted already)", ErrRouteConflict, iv.Start.Format(time.RFC3339), iv.Sender)
				}
				return err
			}
		}
		if err := insertTransition(ctx, tx, tr); err != nil {
			return err
		}
		if err := enqueue(ctx, tx, now, out); err != nil {
			return err
		}
		st.Version = v
		return nil
	})
}

func insertInterval(ctx context.Context, tx *sql.Tx, iv RouteInterval, now int64) error {
	agents, err := jsonList(iv.Agents)
	if err != nil {
		return err
	}
	bad, err := jsonList(iv.BadAgents)
	if err != nil {
		return err
	}
	rounds, err := jsonList(iv.Rounds)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO route_intervals (route, sender, start, agents, bad_agents, quorum, bad, rounds,
		leader, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		iv.Route, iv.Sender, iv.Start.UnixMilli(), agents, bad, iv.Quorum, iv.Bad, rounds, iv.Leader, now)
	return err
}
