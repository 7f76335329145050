package store

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"
)

// Postgres is the store on PostgreSQL: the same DB, schema history and
// SQL as on SQLite (see pgsql.go), for several agents sharing one
// history.
type Postgres = DB

// migrationLock is the key of the advisory lock that serialises agents
// migrating one database at once.
const migrationLock = 0x6f7470726f6265 // "otprobe"

// OpenPostgres connects to the database at dsn (a postgres:// URL or a
// keyword/value string; PGPASSFILE and passfile= are honoured) and
// migrates it to the current schema. Writes go through one connection, as
// on SQLite, so one agent's transactions never interleave; reads use a
// pool. Errors never contain the DSN, which may hold a password.
func OpenPostgres(ctx context.Context, dsn string) (*DB, error) {
	w, err := openPostgresDB(dsn)
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	if err := migrate(ctx, w, sqliteMigrations); err != nil {
		w.Close()
		return nil, err
	}
	r, err := openPostgresDB(dsn)
	if err != nil {
		w.Close()
		return nil, err
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	s := &DB{pg: true, dsn: dsn, w: w, r: r, now: time.Now}
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: postgres: prepare statements: %w", err)
	}
	return s, nil
}

// errPostgresHistory is returned for a database migrated by an otpprobe
// whose PostgreSQL schema history was its own (attempts only).
var errPostgresHistory = errors.New("this PostgreSQL database was created by an earlier otpprobe whose PostgreSQL schema differed; start from an empty database")
