package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otpprobe/otpprobe/attempt"
	_ "modernc.org/sqlite"
)

// openRaw opens a database file the way OpenSQLite's writer does, without
// migrating it: the tests build old versions with it.
func openRaw(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func versions(t *testing.T, db *sql.DB) []int {
	t.Helper()
	rows, err := db.Query(`SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// TestMigrateFromEveryOlderVersion opens a database left at each older
// schema version and checks that OpenSQLite brings it to the current one.
func TestMigrateFromEveryOlderVersion(t *testing.T) {
	sqliteOnly(t)
	ctx := context.Background()
	for old := 0; old < len(sqliteMigrations); old++ {
		path := filepath.Join(t.TempDir(), "old.db")
		db := openRaw(t, path)
		if err := migrate(ctx, db, sqliteMigrations[:old]); err != nil {
			t.Fatal(err)
		}
		db.Close()

		s, err := OpenSQLite(ctx, path)
		if err != nil {
			t.Fatalf("from version %d: %v", old, err)
		}
		v, err := s.SchemaVersion(ctx)
		if err != nil || v != len(sqliteMigrations) {
			t.Fatalf("from version %d: now at %d (%v), want %d", old, v, err, len(sqliteMigrations))
		}
		a := newAttempt(1)
		finish(a, 1)
		if err := s.Create(ctx, a); err != nil {
			t.Fatalf("from version %d: %v", old, err)
		}
		s.Close()
	}
}

// TestMigrateNextVersion plays the next release: a database written by
// this schema, with attempts in it, gets a further migration that adds a
// table referencing attempts and backfills a column; the attempts survive
// and running it again changes nothing.
func TestMigrateNextVersion(t *testing.T) {
	sqliteOnly(t)
	ctx := context.Background()
	s, path := openTest(t)
	var want []*attempt.Attempt
	for i := range 20 {
		a := newAttempt(i)
		finish(a, i)
		if err := s.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
		want = append(want, stored(a))
	}
	s.Close()

	cur := len(sqliteMigrations)
	next := append(sqliteMigrations[:cur:cur], migration{cur + 1, "example_next", execAll(
		`CREATE TABLE example_next (
			route TEXT NOT NULL, at INTEGER NOT NULL, state TEXT NOT NULL,
			evidence TEXT NOT NULL REFERENCES attempts(id)
		) STRICT`,
		`ALTER TABLE attempts ADD COLUMN region TEXT NOT NULL DEFAULT ''`,
		`UPDATE attempts SET region = 'eu'`,
	)})
	db := openRaw(t, path)
	for range 2 {
		if err := migrate(ctx, db, next); err != nil {
			t.Fatal(err)
		}
	}
	if got := versions(t, db); len(got) != cur+1 || got[cur] != cur+1 {
		t.Fatalf("versions %v, want 1..%d once each", got, cur+1)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM attempts WHERE region = 'eu'`).Scan(&n); err != nil || n != 20 {
		t.Fatalf("backfilled %d rows (%v), want 20", n, err)
	}
	db.Close()

	// This build refuses the newer file instead of misreading it.
	if _, err := OpenSQLite(ctx, path); !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), fmt.Sprintf("version %d, this build knows %d", cur+1, cur)) {
		t.Fatalf("OpenSQLite of a newer schema: %v", err)
	}

	// Extra columns do not disturb the store's reads.
	ms := sqliteMigrations
	sqliteMigrations = next
	defer func() { sqliteMigrations = ms }()
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, w := range want {
		got, err := s.Get(ctx, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, got, w)
	}
}

// TestMigrateFailureRollsBack checks that a failing migration leaves the
// database at the previous whole version, with a clear error.
func TestMigrateFailureRollsBack(t *testing.T) {
	sqliteOnly(t)
	ctx := context.Background()
	s, path := openTest(t)
	if err := s.Create(ctx, newAttempt(1)); err != nil {
		t.Fatal(err)
	}
	s.Close()

	cur := len(sqliteMigrations)
	bad := append(sqliteMigrations[:cur:cur], migration{cur + 1, "half_done", execAll(
		`CREATE TABLE half (x INTEGER) STRICT`,
		`DELETE FROM attempts`,
		`THIS IS NOT SQL`,
	)})
	db := openRaw(t, path)
	err := migrate(ctx, db, bad)
	if want := fmt.Sprintf("migration %d (half_done)", cur+1); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("migrate: %v, want an error naming %s", err, want)
	}
	if got := versions(t, db); len(got) != cur {
		t.Fatalf("versions after a failed migration: %v", got)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'half'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("table of the failed migration exists: %d %v", n, err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM attempts`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("attempts after a failed migration: %d %v", n, err)
	}

	misnumbered := []migration{{2, "two", execAll()}}
	if err := migrate(ctx, db, misnumbered); err == nil || !strings.Contains(err.Error(), `"two" has version 2, want 1`) {
		t.Fatalf("misnumbered migrations: %v", err)
	}
}

func TestMigrateIdempotent(t *testing.T) {
	sqliteOnly(t)
	ctx := context.Background()
	_, path := openTest(t)
	for range 3 {
		s, err := OpenSQLite(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	if got := versions(t, openRaw(t, path)); len(got) != len(sqliteMigrations) {
		t.Fatalf("versions %v after reopening", got)
	}
}

// TestAttemptsWithoutRoundID: rows written before attempts carried their
// round's ID (and their agent) read back with an empty RoundID and Agent
// and can still be decided.
func TestAttemptsWithoutRoundID(t *testing.T) {
	sqliteOnly(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v3.db")
	db := openRaw(t, path)
	if err := migrate(ctx, db, sqliteMigrations[:3]); err != nil {
		t.Fatal(err)
	}
	a := newAttempt(7)
	vals, err := values(a, testBase)
	if err != nil {
		t.Fatal(err)
	}
	old := strings.TrimSuffix(columns, ", round_id, agent")
	ph := strings.TrimSuffix(strings.Repeat("?, ", numColumns-2), ", ")
	if _, err := db.ExecContext(ctx, `INSERT INTO attempts (`+old+`) VALUES (`+ph+`)`, vals[:numColumns-2]...); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pending, err := s.Pending(ctx, "eu") // SQLite: one agent owns the file, whatever its name
	if err != nil || len(pending) != 1 || pending[0].ID != a.ID || pending[0].RoundID != "" || pending[0].Agent != "" {
		t.Fatalf("pending = %+v, %v; want %s with no round", pending, err, a.ID)
	}
	finish(pending[0], 7)
	if err := s.Update(ctx, pending[0]); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, a.ID)
	if err != nil || got.Outcome != pending[0].Outcome || got.RoundID != "" {
		t.Fatalf("get = %+v, %v", got, err)
	}
}
