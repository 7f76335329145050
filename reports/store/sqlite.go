// Package store keeps probe attempts: attempt.Store on SQLite (the default,
// one file, pure Go) and on PostgreSQL (several agents, one history).
// Both share one schema history: append-only migrations recorded in
// schema_migrations, to which later tables (route state, alert outbox, DNS
// snapshots) are added as new versions.
//
// Time columns hold UTC Unix milliseconds (INTEGER, NULL for a zero
// time.Time), so attempts read back are in UTC, truncated to the
// millisecond; durations are milliseconds; booleans 0/1. Verdict
// summaries have their own columns for queries and the whole
// verify.Verdicts is kept as JSON, which is what is read back.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrDuplicate is returned by Create for an ID that is already stored.
var ErrDuplicate = errors.New("attempt ID already exists")

// SQLite is an attempt.Store in one SQLite file in WAL mode. Writes go through
// a single connection (SQLite has one writer anyway, and this way they
// queue in Go instead of spinning on SQLITE_BUSY); reads use a pool of
// read-only connections that WAL lets run beside the writer.
type DB struct {
	pg     bool   // PostgreSQL through pgsql.go's rewriting connector
	dsn    string // PostgreSQL: for the election's own connection; never logged
	w, r   *sql.DB
	insert *sql.Stmt
	update *sql.Stmt
	get    *sql.Stmt
	now    func() time.Time
}

// SQLite is the store's historical name: DB on either driver.
type SQLite = DB

var _ attempt.Store = (*DB)(nil)

// busyTimeout bounds how long a statement waits for another process's
// write lock (e.g. `otpprobe once` beside a running daemon).
const busyTimeout = 5 * time.Second

// OpenSQLite opens (creating it and its directory if needed) the database
// at path and migrates it to the current schema.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	if path == "" {
		return nil, errors.New("store: sqlite path is empty")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: sqlite path %q: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return nil, fmt.Errorf("store: create directory for %q: %w", path, err)
	}
	// The database holds evidence (headers, transcripts): owner only. SQLite
	// gives its -wal and -shm files the database file's mode.
	if f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("store: create %q: %w", path, err)
	}
	// A file: URI, escaped, so a path with '?', '#' or '%' means itself.
	name := (&url.URL{Scheme: "file", Path: abs}).String()
	pragmas := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)", busyTimeout.Milliseconds())

	w, err := sql.Open("sqlite", name+"?"+pragmas+"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("store: open %q: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open %q: %w", path, err)
	}
	if err := migrate(ctx, w, sqliteMigrations); err != nil {
		w.Close()
		return nil, fmt.Errorf("%w (database %q)", err, path)
	}

	r, err := sql.Open("sqlite", name+"?"+pragmas+"&_query_only=1")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open %q for reading: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)

	s := &SQLite{w: w, r: r, now: time.Now}
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: prepare statements for %q: %w", path, err)
	}
	return s, nil
}

func (s *SQLite) prepare(ctx context.Context) error {
	ph := strings.TrimSuffix(strings.Repeat("?, ", numColumns), ", ")
	var err error
	if s.insert, err = s.w.PrepareContext(ctx, `INSERT INTO attempts (`+columns+`) VALUES (`+ph+`)`); err != nil {
		return err
	}
	set := make([]string, 0, numColumns-1)
	for _, c := range strings.Split(columns, ",")[1:] {
		set = append(set, strings.TrimSpace(c)+" = ?")
	}
	if s.update, err = s.w.PrepareContext(ctx, `UPDATE attempts SET `+strings.Join(set, ", ")+` WHERE id = ?`); err != nil {
		return err
	}
	s.get, err = s.r.PrepareContext(ctx, `SELECT `+columns+` FROM attempts WHERE id = ?`)
	return err
}

// Close closes the database. Pending writes have already committed: every
// method returns only after its transaction did.
func (s *SQLite) Close() error {
	for _, st := range []*sql.Stmt{s.insert, s.update, s.get} {
		if st != nil {
			st.Close()
		}
	}
	var errs []error
	// Lets SQLite refresh the statistics its planner uses, as advised for
	// long-lived connections; cheap when nothing changed.
	if !s.pg {
		if _, err := s.w.Exec("PRAGMA optimize"); err != nil {
			errs = append(errs, err)
		}
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	return errors.Join(errs...)
}

// Create inserts a new attempt.
func (s *SQLite) Create(ctx context.Context, a *attempt.Attempt) error {
	if err := checkAttempt(a); err != nil {
		return fmt.Errorf("store: create attempt: %w", err)
	}
	vals, err := values(a, s.now())
	if err != nil {
		return fmt.Errorf("store: create attempt %q: %w", a.ID, err)
	}
	if _, err := s.insert.ExecContext(ctx, vals...); err != nil {
		if isConstraint(err, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY) || isUniqueViolation(err) {
			return fmt.Errorf("store: create attempt %q: %w", a.ID, ErrDuplicate)
		}
		return fmt.Errorf("store: create attempt %q: %w", a.ID, err)
	}
	return nil
}

// Update replaces the stored attempt with a's ID.
func (s *SQLite) Update(ctx context.Context, a *attempt.Attempt) error {
	if err := checkAttempt(a); err != nil {
		return fmt.Errorf("store: update attempt: %w", err)
	}
	vals, err := values(a, s.now())
	if err != nil {
		return fmt.Errorf("store: update attempt %q: %w", a.ID, err)
	}
	res, err := s.update.ExecContext(ctx, append(vals[1:], a.ID)...)
	if err != nil {
		return fmt.Errorf("store: update attempt %q: %w", a.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: update attempt %q: %w", a.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("store: update attempt %q: %w", a.ID, attempt.ErrNotFound)
	}
	return nil
}

// Get returns the attempt with the given ID.
func (s *SQLite) Get(ctx context.Context, id string) (*attempt.Attempt, error) {
	a, err := scanAttempt(s.get.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: get attempt %q: %w", id, attempt.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get attempt %q: %w", id, err)
	}
	return a, nil
}

// Pending returns the attempts agent must resume after a restart, oldest
// first. On SQLite one agent owns the file, so that is every attempt not
// decided yet, whatever agent name stored it (the name defaults to the
// host name, which a recreated container changes). On PostgreSQL it is
// agent's own: the undecided attempts stored before attempts had an agent
// (agent ”) are first claimed by the agent that asks, in one UPDATE, so
// exactly one agent resumes each of them.
func (s *SQLite) Pending(ctx context.Context, agent string) ([]*attempt.Attempt, error) {
	if !s.pg {
		return s.query(ctx, "pending", pendingQuery, string(attempt.OutcomePending))
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE attempts SET agent = ? WHERE agent = '' AND outcome IN (?, '')`,
		agent, string(attempt.OutcomePending)); err != nil {
		return nil, fmt.Errorf("store: claim pending attempts: %w", err)
	}
	return s.query(ctx, "pending", agentPendingQuery, string(attempt.OutcomePending), agent)
}

// List returns the attempts matching f, oldest first (by CreatedAt, then
// ID); with f.Limit, the oldest f.Limit of them. f.From and f.To count at
// millisecond resolution, like the stored times.
func (s *SQLite) List(ctx context.Context, f attempt.Filter) ([]*attempt.Attempt, error) {
	q, args, err := listQuery(f, func(int) string { return "?" })
	if err != nil {
		return nil, fmt.Errorf("store: list attempts: %w", err)
	}
	return s.query(ctx, "list", q, args...)
}

func (s *SQLite) query(ctx context.Context, op, q string, args ...any) ([]*attempt.Attempt, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s attempts: %w", op, err)
	}
	defer rows.Close()
	return collectAttempts(op, rows)
}

// checkAttempt rejects what the schema cannot hold meaningfully.
func checkAttempt(a *attempt.Attempt) error {
	switch {
	case a == nil:
		return errors.New("attempt is nil")
	case a.ID == "":
		return errors.New("attempt ID is empty")
	case a.CreatedAt.IsZero():
		return fmt.Errorf("attempt %q: CreatedAt is zero", a.ID)
	}
	return nil
}

func isConstraint(err error, code int) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == code
}
