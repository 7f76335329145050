package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/otpprobe/otpprobe/attempt"
)

// postgresURLEnv names the server the PostgreSQL tests use; they skip without
// one. Each test works in a schema of its own, dropped afterwards.
const postgresURLEnv = "OTPPROBE_POSTGRES_URL"

func openPostgresTest(t *testing.T) *Postgres {
	t.Helper()
	url := os.Getenv(postgresURLEnv)
	if url == "" {
		t.Skip(postgresURLEnv + " is not set")
	}
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
	if os.Getenv(postgresURLEnv) == "" {
		t.Skip(postgresURLEnv + " is not set")
	}
	runConformance(t, func(t *testing.T) attempt.Store { return openPostgresTest(t) })
}

func TestPostgresMigrate(t *testing.T) {
	p := openPostgresTest(t)
	ctx := context.Background()
	for range 2 { // idempotent
		if err := migratePostgres(ctx, p.pool, postgresMigrations); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := p.pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(postgresMigrations) {
		t.Fatalf("schema_migrations has %d rows (%v), want %d", n, err, len(postgresMigrations))
	}
	if err := migratePostgres(ctx, p.pool, postgresMigrations[:0]); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("an older build migrating: %v, want ErrSchemaTooNew", err)
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
