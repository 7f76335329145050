package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/otpprobe/otpprobe/attempt"
)

// postgresURLEnv names the server the PostgreSQL tests use (scripts/test.sh
// starts a throw-away cluster with scripts/pgtest.sh); they skip without
// one, and fail under CI=true. Each test works in a schema of its own,
// dropped afterwards. postgresRestartEnv is a shell command restarting that
// server.
const (
	postgresURLEnv     = "OTPPROBE_POSTGRES_URL"
	postgresRestartEnv = "OTPPROBE_POSTGRES_RESTART"
)

func postgresURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv(postgresURLEnv)
	if url == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal(postgresURLEnv + " is not set: under CI=true the PostgreSQL tests must run (scripts/test.sh starts a server)")
		}
		t.Skip(postgresURLEnv + " is not set")
	}
	return url
}

func openPostgresTest(t testing.TB) *Postgres {
	t.Helper()
	url := postgresURL(t)
	ctx := context.Background()
	schema := fmt.Sprintf("otpprobe_test_%d", time.Now().UnixNano())
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		conn.Close(context.Background())
	})
	sep := "?" // a URL; keyword/value strings take a space
	switch {
	case !strings.Contains(url, "://"):
		sep = " "
	case strings.Contains(url, "?"):
		sep = "&"
	}
	p, err := OpenPostgres(ctx, url+sep+"search_path="+schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestPostgres(t *testing.T) {
	postgresURL(t)
	runConformance(t, func(t *testing.T) attempt.Store { return openPostgresTest(t) })
}

func TestPostgresMigrate(t *testing.T) {
	p := openPostgresTest(t)
	ctx := context.Background()
	for range 2 { // idempotent
		if err := migrate(ctx, p.w, sqliteMigrations); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := p.r.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(sqliteMigrations) {
		t.Fatalf("schema_migrations has %d rows (%v), want %d", n, err, len(sqliteMigrations))
	}
	if err := migrate(ctx, p.w, sqliteMigrations[:1]); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("an older build migrating: %v, want ErrSchemaTooNew", err)
	}
	// A database of the earlier PostgreSQL attempt store is refused.
	if _, err := p.w.ExecContext(ctx, `UPDATE schema_migrations SET name = 'attempts_round_id' WHERE version = 2`); err != nil {
		t.Fatal(err)
	}
	if err := migrate(ctx, p.w, sqliteMigrations); !errors.Is(err, errPostgresHistory) {
		t.Fatalf("another schema history: %v", err)
	}
}

// TestPostgresBadURL needs no server: a URL that does not parse gives an
// error without the URL (and its password) in it.
func TestPostgresBadURL(t *testing.T) {
	_, err := OpenPostgres(context.Background(), "postgres://otp:s3cr3t-pw@db.example:notaport/x")
	if err == nil || strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Fatalf("OpenPostgres with a bad URL: %v", err)
	}
}

// TestPostgresRestart: the server restarts between an attempt's creation
// and its outcome (pg_ctl restart); the pool reconnects, the update lands
// once and nothing is lost.
func TestPostgresRestart(t *testing.T) {
	p := openPostgresTest(t)
	restart := os.Getenv(postgresRestartEnv)
	if restart == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal(postgresRestartEnv + " is not set under CI=true")
		}
		t.Skip(postgresRestartEnv + " is not set")
	}
	ctx := context.Background()
	a := &attempt.Attempt{ID: "restart-1", Probe: "otp", Sender: "m365", Mailbox: "gmail", Provider: "gmail",
		CreatedAt: time.Now().UTC(), Outcome: attempt.OutcomePending}
	if err := p.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sh", "-c", restart).CombinedOutput(); err != nil {
		t.Fatalf("restart: %v\n%s", err, out)
	}
	a.Outcome = attempt.OutcomeInbox
	// The first use after the restart may meet a connection the server
	// closed; the store's caller retries (the engine does), as here.
	var err error
	for range 3 {
		if err = p.Update(ctx, a); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("update after the restart: %v", err)
	}
	got, err := p.Get(ctx, a.ID)
	if err != nil || got.Outcome != attempt.OutcomeInbox {
		t.Fatalf("after the restart: %+v %v", got, err)
	}
	pending, err := p.Pending(ctx, "")
	if err != nil || len(pending) != 0 {
		t.Errorf("pending after the restart: %d %v", len(pending), err)
	}
}
