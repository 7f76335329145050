package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// A migration moves the schema from version-1 to version. Shipped
// migrations are never edited: a change is a new migration appended to
// sqliteMigrations with the next version. Later tables of the reports
// (route state, alert outbox, DNS snapshots) are added the same way, each
// in its own migration, keyed by names from the config and referencing
// attempts(id) where they carry evidence.
type migration struct {
	version int
	name    string
	up      func(ctx context.Context, tx *sql.Tx) error
}

// execAll is the up function of a migration that is plain DDL.
func execAll(stmts ...string) func(context.Context, *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}
}

// sqliteMigrations is the SQLite schema history, oldest first.
//
// Times are INTEGER milliseconds since the Unix epoch (UTC); NULL is the
// zero time.Time. Durations are INTEGER milliseconds. Booleans are 0/1.
var sqliteMigrations = []migration{
	{1, "attempts", execAll(
		`CREATE TABLE attempts (
			id             TEXT    NOT NULL PRIMARY KEY,
			probe          TEXT    NOT NULL,
			sender         TEXT    NOT NULL,
			mailbox        TEXT    NOT NULL,
			provider       TEXT    NOT NULL,
			token          TEXT    NOT NULL,
			code           TEXT    NOT NULL,
			message_id     TEXT    NOT NULL,
			created_at     INTEGER NOT NULL,
			deadline       INTEGER,
			latency_slo_ms INTEGER NOT NULL,
			outcome        TEXT    NOT NULL,
			late           INTEGER NOT NULL CHECK (late IN (0, 1)),
			submitted_at   INTEGER,
			seen_at        INTEGER,
			folder         TEXT    NOT NULL,
			internal_date  INTEGER,
			received_at    INTEGER,
			smtp_stage     TEXT    NOT NULL,
			smtp_code      INTEGER NOT NULL,
			smtp_enhanced  TEXT    NOT NULL,
			smtp_reply     TEXT    NOT NULL,
			transcript     TEXT    NOT NULL,
			header         TEXT    NOT NULL,
			trusted        INTEGER NOT NULL CHECK (trusted IN (0, 1)),
			authserv_id    TEXT    NOT NULL,
			spf            TEXT    NOT NULL,
			dkim           TEXT    NOT NULL,
			dmarc          TEXT    NOT NULL,
			arc            TEXT    NOT NULL,
			verdicts       TEXT    NOT NULL,
			diagnosis      TEXT    NOT NULL,
			detail         TEXT    NOT NULL,
			updated_at     INTEGER NOT NULL
		) STRICT`,
		`CREATE INDEX attempts_created_at ON attempts (created_at)`,
		`CREATE INDEX attempts_probe_created_at ON attempts (probe, created_at)`,
		`CREATE INDEX attempts_sender_created_at ON attempts (sender, created_at)`,
		`CREATE INDEX attempts_mailbox_created_at ON attempts (mailbox, created_at)`,
		`CREATE INDEX attempts_outcome_created_at ON attempts (outcome, created_at)`,
	)},
	{2, "routes_and_alert_outbox", migrateRoutesAndOutbox},
	dnsSnapshotsMigration,
	// Attempts stored before rounds had IDs keep round_id '': they are
	// never grouped into a round.
	{4, "attempts_round_id", execAll(
		`ALTER TABLE attempts ADD COLUMN round_id TEXT NOT NULL DEFAULT ''`,
		`CREATE INDEX attempts_round_id ON attempts (round_id)`,
	)},
	{5, "route_audit", migrateRouteAudit},
	incidentsMigration,
	// Attempts stored before attempts named their agent keep agent '':
	// who stored them is not known (on PostgreSQL several agents may
	// have), so none is made up; Pending hands each undecided one to the
	// first agent that asks (see DB.Pending).
	{7, "attempts_agent", execAll(
		`ALTER TABLE attempts ADD COLUMN agent TEXT NOT NULL DEFAULT ''`,
		`CREATE INDEX attempts_agent_created_at ON attempts (agent, created_at)`,
	)},
	{8, "multi_agent_routes", migrateMultiAgent},
}

// ErrSchemaTooNew means the database was migrated by a newer otpprobe.
var ErrSchemaTooNew = errors.New("database schema is newer than this build of otpprobe")

// migrate applies every migration of ms not yet recorded in
// schema_migrations, each in its own transaction together with its
// record, so a crash leaves the schema at a whole version. It is
// idempotent and safe against another process migrating the same file:
// the writer's transactions are IMMEDIATE, so the check and the change
// happen under one write lock.
func migrate(ctx context.Context, db *sql.DB, ms []migration) error {
	for i, m := range ms {
		if m.version != i+1 {
			return fmt.Errorf("store: migration %q has version %d, want %d", m.name, m.version, i+1)
		}
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("store: create schema_migrations: %w", err)
	}
	var current int
	if err := db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("store: read schema version: %w", err)
	}
	if current > len(ms) {
		return fmt.Errorf("store: %w: database is at version %d, this build knows %d", ErrSchemaTooNew, current, len(ms))
	}
	if err := checkHistory(ctx, db, ms); err != nil {
		return err
	}
	for _, m := range ms[current:] {
		if err := applyMigration(ctx, db, m); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, m migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: migration %d (%s): begin: %w", m.version, m.name, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if isPostgres(db) { // agents starting together migrate once
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, int64(migrationLock)); err != nil {
			return fmt.Errorf("store: migration %d (%s): lock: %w", m.version, m.name, err)
		}
	}
	var applied int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&applied); err != nil {
		return fmt.Errorf("store: migration %d (%s): %w", m.version, m.name, err)
	}
	if applied > 0 { // another process got there first
		return nil
	}
	if err := m.up(ctx, tx); err != nil {
		return fmt.Errorf("store: migration %d (%s): %w", m.version, m.name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, time.Now().UnixMilli()); err != nil {
		return fmt.Errorf("store: migration %d (%s): record: %w", m.version, m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: migration %d (%s): commit: %w", m.version, m.name, err)
	}
	return nil
}

// checkHistory insists that the versions applied are the migrations of
// ms by name: a database with another history is refused, not migrated
// on top of.
func checkHistory(ctx context.Context, db *sql.DB, ms []migration) error {
	rows, err := db.QueryContext(ctx, `SELECT version, name FROM schema_migrations ORDER BY version`)
	if err != nil {
		return fmt.Errorf("store: read schema history: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			return fmt.Errorf("store: read schema history: %w", err)
		}
		if v >= 1 && v <= len(ms) && ms[v-1].name != name {
			if isPostgres(db) {
				return fmt.Errorf("store: %w (version %d is %q, want %q)", errPostgresHistory, v, name, ms[v-1].name)
			}
			return fmt.Errorf("store: schema version %d is %q, this build's is %q", v, name, ms[v-1].name)
		}
	}
	return rows.Err()
}

func isPostgres(db *sql.DB) bool {
	_, ok := db.Driver().(*stdlib.Driver)
	return ok
}

// SchemaVersion returns the highest migration applied to the database.
func (s *SQLite) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.r.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}
