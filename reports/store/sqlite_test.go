package store

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/otpprobe/otpprobe/attempt"
)

func TestSQLite(t *testing.T) {
	runConformance(t, func(t *testing.T) attempt.Store {
		s, _ := openTest(t)
		return s
	})
}

// storeDriverEnv runs the store tests on PostgreSQL (postgres) instead of
// SQLite: scripts/test.sh runs the package once more that way, so both
// drivers pass the same suite. Tests of SQLite's files skip then.
const storeDriverEnv = "OTPPROBE_STORE_TEST_DRIVER"

func onPostgres() bool { return os.Getenv(storeDriverEnv) == "postgres" }

func sqliteOnly(t testing.TB) {
	t.Helper()
	if onPostgres() {
		t.Skip("tests SQLite's file")
	}
}

func openTest(t testing.TB) (*SQLite, string) {
	t.Helper()
	if onPostgres() {
		return openPostgresTest(t), ""
	}
	path := filepath.Join(t.TempDir(), "data", "otpprobe.db")
	s, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestOpen(t *testing.T) {
	sqliteOnly(t)
	ctx := context.Background()
	// A path needing escaping in a file: URI, in a directory to create.
	path := filepath.Join(t.TempDir(), "a dir?#%", "nested", "otp probe.db")
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	a := newAttempt(1)
	if err := s.Create(ctx, a); err != nil {
		t.Fatal(err)
	}

	for _, f := range []string{path, path + "-wal"} {
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", f, fi.Mode(), err)
		}
	}

	var mode string
	var fk, sync int
	if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if err := s.w.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		t.Fatal(err)
	}
	if err := s.w.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" || fk != 1 || sync != 1 {
		t.Errorf("journal_mode=%s foreign_keys=%d synchronous=%d, want wal 1 1(NORMAL)", mode, fk, sync)
	}
	if _, err := s.r.ExecContext(ctx, "DELETE FROM attempts"); err == nil {
		t.Error("the read pool accepted a write")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Get(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, stored(a))

	if _, err := OpenSQLite(ctx, ""); err == nil || !strings.Contains(err.Error(), "path is empty") {
		t.Errorf("OpenSQLite(\"\"): %v", err)
	}
	if _, err := OpenSQLite(ctx, filepath.Join(path, "x.db")); err == nil {
		t.Error("OpenSQLite under a file succeeded")
	}
}

// TestIndexes checks that the queries the reports run use an index.
func TestIndexes(t *testing.T) {
	sqliteOnly(t)
	ctx := context.Background()
	s, _ := openTest(t)
	for q, index := range map[string]string{
		`SELECT id FROM attempts WHERE created_at >= 1 AND created_at < 2 ORDER BY created_at, id`: "attempts_created_at",
		`SELECT id FROM attempts WHERE sender = 'x' AND created_at >= 1 ORDER BY created_at, id`:   "attempts_sender_created_at",
		`SELECT id FROM attempts WHERE mailbox = 'x' AND created_at >= 1 ORDER BY created_at, id`:  "attempts_mailbox_created_at",
		`SELECT id FROM attempts WHERE probe = 'x' ORDER BY created_at, id`:                        "attempts_probe_created_at",
		`SELECT id FROM attempts WHERE outcome IN ('pending', '') ORDER BY created_at, id`:         "attempts_outcome_created_at",
	} {
		rows, err := s.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if !slices.ContainsFunc(plan, func(d string) bool { return strings.Contains(d, "INDEX "+index) }) {
			t.Errorf("%s\nplan %q does not use %s", q, plan, index)
		}
	}
}

// TestTwoOpeners writes through two stores on one file at once, as
// `otpprobe once` beside a running daemon does: busy_timeout and IMMEDIATE
// transactions make both succeed.
func TestTwoOpeners(t *testing.T) {
	sqliteOnly(t)
	ctx := context.Background()
	a, path := openTest(t)
	b, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const per = 100
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	for k, s := range []*SQLite{a, b} {
		wg.Go(func() {
			for j := range per {
				i := 2*j + k
				at := newAttempt(i)
				if err := s.Create(ctx, at); err != nil {
					errc <- err
					return
				}
				finish(at, i)
				if err := s.Update(ctx, at); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	for _, s := range []*SQLite{a, b} {
		all, err := s.List(ctx, attempt.Filter{})
		if err != nil || len(all) != 2*per {
			t.Fatalf("listed %d (%v), want %d", len(all), err, 2*per)
		}
	}
}
