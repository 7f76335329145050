package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// incidentsMigration (version 6) keeps incidents: from a sender's first
// unhealthy round to its recovery, with what was counted meanwhile.
var incidentsMigration = migration{6, "incidents", execAll(
	`CREATE TABLE incidents (
		id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
		probe       TEXT    NOT NULL,
		sender      TEXT    NOT NULL,
		routes      TEXT    NOT NULL,
		started_at  INTEGER NOT NULL,
		ended_at    INTEGER,
		last_bad_at INTEGER NOT NULL,
		first_round TEXT    NOT NULL,
		last_round  TEXT    NOT NULL,
		rounds      INTEGER NOT NULL,
		counts      TEXT    NOT NULL,
		providers   TEXT    NOT NULL,
		diagnoses   TEXT    NOT NULL,
		updated_at  INTEGER NOT NULL
	) STRICT`,
	`CREATE INDEX incidents_started_at ON incidents (started_at)`,
	`CREATE INDEX incidents_open ON incidents (probe, sender) WHERE ended_at IS NULL`,
)}

// Incident is one stored incident of a sender in a probe.
type Incident struct {
	ID         int64
	Probe      string
	Sender     string
	Routes     []string // routes the sender is on
	StartedAt  time.Time
	EndedAt    time.Time // zero while open
	LastBadAt  time.Time // start of its last unhealthy round
	FirstRound string    // round IDs
	LastRound  string
	Rounds     int            // unhealthy rounds
	Counts     map[string]int // attempts by outcome, and "late"
	Providers  []string       // providers where a round was unhealthy
	Diagnoses  []Diagnosis    // distinct root causes seen, most frequent first
}

// Diagnosis is one distinct diagnosis and how many attempts had it.
type Diagnosis struct {
	Text  string `json:"text"`
	Count int    `json:"count"`
}

// IncidentQuery selects incidents, newest first.
type IncidentQuery struct {
	Since    time.Time // started or still open at or after
	OpenOnly bool
	Sender   string
	Limit    int // 0: 100
}

const incidentColumns = `id, probe, sender, routes, started_at, ended_at, last_bad_at, first_round, last_round,
	rounds, counts, providers, diagnoses`

// SaveIncident inserts in (ID 0; ID is set) or updates it.
func (s *SQLite) SaveIncident(ctx context.Context, in *Incident) error {
	diag, counts := in.Diagnoses, in.Counts
	if diag == nil {
		diag = []Diagnosis{}
	}
	if counts == nil {
		counts = map[string]int{}
	}
	var js [4]string
	for i, v := range []any{in.Routes, in.Providers, counts, diag} {
		if l, ok := v.([]string); ok && l == nil {
			v = []string{}
		}
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("store: save incident of %s: %w", in.Sender, err)
		}
		js[i] = string(b)
	}
	now := s.now().UnixMilli()
	args := []any{in.Probe, in.Sender, js[0], in.StartedAt.UnixMilli(), millis(in.EndedAt), in.LastBadAt.UnixMilli(),
		in.FirstRound, in.LastRound, in.Rounds, js[2], js[1], js[3], now}
	if in.ID == 0 {
		err := s.w.QueryRowContext(ctx, `INSERT INTO incidents (probe, sender, routes, started_at, ended_at, last_bad_at,
			first_round, last_round, rounds, counts, providers, diagnoses, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, args...).Scan(&in.ID)
		if err != nil {
			return fmt.Errorf("store: save incident of %s: %w", in.Sender, err)
		}
		return nil
	}
	_, err := s.w.ExecContext(ctx, `UPDATE incidents SET probe = ?, sender = ?, routes = ?, started_at = ?, ended_at = ?,
		last_bad_at = ?, first_round = ?, last_round = ?, rounds = ?, counts = ?, providers = ?, diagnoses = ?, updated_at = ?
		WHERE id = ?`, append(args, in.ID)...)
	if err != nil {
		return fmt.Errorf("store: save incident %d: %w", in.ID, err)
	}
	return nil
}

// Incidents returns the incidents matching q, newest first.
func (s *SQLite) Incidents(ctx context.Context, q IncidentQuery) ([]Incident, error) {
	var where []string
	var args []any
	if !q.Since.IsZero() {
		where = append(where, "(started_at >= ? OR ended_at IS NULL OR ended_at >= ?)")
		args = append(args, q.Since.UnixMilli(), q.Since.UnixMilli())
	}
	if q.OpenOnly {
		where = append(where, "ended_at IS NULL")
	}
	if q.Sender != "" {
		where = append(where, "sender = ?")
		args = append(args, q.Sender)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	sq := `SELECT ` + incidentColumns + ` FROM incidents`
	if len(where) > 0 {
		sq += ` WHERE ` + strings.Join(where, " AND ")
	}
	sq += ` ORDER BY started_at DESC, id DESC LIMIT ?`
	rows, err := s.r.QueryContext(ctx, sq, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("store: incidents: %w", err)
	}
	defer rows.Close()
	var out []Incident
	for rows.Next() {
		in, err := scanIncident(rows)
		if err != nil {
			return nil, fmt.Errorf("store: incidents: %w", err)
		}
		out = append(out, in)
	}
	return out, rows.Err()
}

// ErrNoIncident is wrapped by Incident for an unknown ID.
var ErrNoIncident = errors.New("incident not found")

// Incident returns one incident.
func (s *SQLite) Incident(ctx context.Context, id int64) (Incident, error) {
	in, err := scanIncident(s.r.QueryRowContext(ctx, `SELECT `+incidentColumns+` FROM incidents WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Incident{}, fmt.Errorf("store: incident %d: %w", id, ErrNoIncident)
	}
	if err != nil {
		return Incident{}, fmt.Errorf("store: incident %d: %w", id, err)
	}
	return in, nil
}

func scanIncident(sc scanner) (Incident, error) {
	var (
		in                                Incident
		started, lastBad                  int64
		ended                             sql.NullInt64
		routes, counts, providers, diagns string
	)
	if err := sc.Scan(&in.ID, &in.Probe, &in.Sender, &routes, &started, &ended, &lastBad, &in.FirstRound, &in.LastRound,
		&in.Rounds, &counts, &providers, &diagns); err != nil {
		return Incident{}, err
	}
	in.StartedAt, in.EndedAt, in.LastBadAt = time.UnixMilli(started).UTC(), fromMillis(ended), time.UnixMilli(lastBad).UTC()
	for _, f := range []struct {
		s string
		v any
	}{{routes, &in.Routes}, {counts, &in.Counts}, {providers, &in.Providers}, {diagns, &in.Diagnoses}} {
		if err := json.Unmarshal([]byte(f.s), f.v); err != nil {
			return Incident{}, fmt.Errorf("incident %d: %w", in.ID, err)
		}
	}
	return in, nil
}

// TransitionsBetween returns the transitions of the given routes (all
// when none are given) at times in [from, to), oldest first.
func (s *SQLite) TransitionsBetween(ctx context.Context, routes []string, from, to time.Time) ([]RouteTransition, error) {
	q := `SELECT ` + transitionColumns + ` FROM route_transitions WHERE at >= ? AND at < ?`
	args := []any{from.UnixMilli(), to.UnixMilli()}
	if len(routes) > 0 {
		q += ` AND route IN (?` + strings.Repeat(", ?", len(routes)-1) + `)`
		for _, r := range routes {
			args = append(args, r)
		}
	}
	rows, err := s.r.QueryContext(ctx, q+` ORDER BY at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: transitions: %w", err)
	}
	out, err := scanTransitions(rows)
	if err != nil {
		return nil, fmt.Errorf("store: transitions: %w", err)
	}
	return out, nil
}

// AlertsBetween returns the alerts (their last state) that were firing at
// some time in [from, to), oldest first.
func (s *SQLite) AlertsBetween(ctx context.Context, from, to time.Time) ([]AlertRecord, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+alertColumns+`
		FROM alerts WHERE starts_at < ? AND (ends_at IS NULL OR ends_at >= ?) ORDER BY starts_at, key`,
		to.UnixMilli(), from.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store: alerts: %w", err)
	}
	out, err := scanAlerts(rows)
	if err != nil {
		return nil, fmt.Errorf("store: alerts: %w", err)
	}
	return out, nil
}

// Notification is one queued notification, as an evidence bundle shows it.
type Notification struct {
	Notifier    string
	Kind        string
	CreatedAt   time.Time
	DeliveredAt time.Time // zero while undelivered
	Tries       int
	LastError   string
}

// NotificationsBetween returns the notifications queued in [from, to),
// oldest first, without their payloads (an alert's or transition's own
// record says what they carried).
func (s *SQLite) NotificationsBetween(ctx context.Context, from, to time.Time) ([]Notification, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT notifier, kind, created_at, delivered_at, tries, last_error
		FROM outbox WHERE created_at >= ? AND created_at < ? ORDER BY created_at, id`, from.UnixMilli(), to.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store: notifications: %w", err)
	}
	defer rows.Close()
	var out []Notification
	for rows.Next() {
		var n Notification
		var created int64
		var delivered sql.NullInt64
		if err := rows.Scan(&n.Notifier, &n.Kind, &created, &delivered, &n.Tries, &n.LastError); err != nil {
			return nil, fmt.Errorf("store: notifications: %w", err)
		}
		n.CreatedAt, n.DeliveredAt = time.UnixMilli(created).UTC(), fromMillis(delivered)
		out = append(out, n)
	}
	return out, rows.Err()
}

// DNSChangesBetween returns the changes of every domain (or of the
// given ones) detected in [from, to), oldest first.
func (s *SQLite) DNSChangesBetween(ctx context.Context, domains []string, from, to time.Time) ([]DNSChange, error) {
	q := `SELECT ` + dnsChangeColumns + ` FROM dns_changes WHERE detected_at >= ? AND detected_at < ?`
	args := []any{from.UnixMilli(), to.UnixMilli()}
	if len(domains) > 0 {
		q += ` AND domain IN (?` + strings.Repeat(", ?", len(domains)-1) + `)`
		for _, d := range domains {
			args = append(args, d)
		}
	}
	rows, err := s.r.QueryContext(ctx, q+` ORDER BY detected_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: DNS changes: %w", err)
	}
	out, err := scanDNSChanges(rows)
	if err != nil {
		return nil, fmt.Errorf("store: DNS changes: %w", err)
	}
	return out, nil
}
