package main

import (
	"context"

	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
)

// openStore opens the config's store: SQLite at store.path or PostgreSQL
// at store.dsn; both are the same store.DB.
func openStore(ctx context.Context, c targets.Store) (*store.DB, error) {
	if c.Driver == "postgres" {
		return store.OpenPostgres(ctx, c.DSN.Reveal())
	}
	return store.OpenSQLite(ctx, c.Path)
}
