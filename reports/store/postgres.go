package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/otpprobe/otpprobe/attempt"
)

// Postgres is an attempt.Store in PostgreSQL, for several agents sharing one
// history. It has the schema and semantics of SQLite (times as bigint UTC
// Unix milliseconds), with boolean and jsonb types.
type Postgres struct {
	pool   *pgxpool.Pool
	insert string
	update string
	now    func() time.Time
}

var _ attempt.Store = (*Postgres)(nil)

// pgMigration is one step of the PostgreSQL schema; like SQLite's, a
// shipped one is never edited.
type pgMigration struct {
	name  string
	stmts []string
}

// postgresMigrations is the PostgreSQL schema history, oldest first
// (version = index + 1); versions match sqliteMigrations where the same
// change is made.
var postgresMigrations = []pgMigration{
	{"attempts", []string{
		`CREATE TABLE attempts (
			id             text     NOT NULL PRIMARY KEY,
			probe          text     NOT NULL,
			sender         text     NOT NULL,
			mailbox        text     NOT NULL,
			provider       text     NOT NULL,
			token          text     NOT NULL,
			code           text     NOT NULL,
			message_id     text     NOT NULL,
			created_at     bigint   NOT NULL,
			deadline       bigint,
			latency_slo_ms bigint   NOT NULL,
			outcome        text     NOT NULL,
			late           boolean  NOT NULL,
			submitted_at   bigint,
			seen_at        bigint,
			folder         text     NOT NULL,
			internal_date  bigint,
			received_at    bigint,
			smtp_stage     text     NOT NULL,
			smtp_code      integer  NOT NULL,
			smtp_enhanced  text     NOT NULL,
			smtp_reply     text     NOT NULL,
			transcript     text     NOT NULL,
			header         text     NOT NULL,
			trusted        boolean  NOT NULL,
			authserv_id    text     NOT NULL,
			spf            text     NOT NULL,
			dkim           text     NOT NULL,
			dmarc          text     NOT NULL,
			arc            text     NOT NULL,
			verdicts       jsonb    NOT NULL,
			diagnosis      text     NOT NULL,
			detail         text     NOT NULL,
			updated_at     bigint   NOT NULL
		)`,
		`CREATE INDEX attempts_created_at ON attempts (created_at)`,
		`CREATE INDEX attempts_probe_created_at ON attempts (probe, created_at)`,
		`CREATE INDEX attempts_sender_created_at ON attempts (sender, created_at)`,
		`CREATE INDEX attempts_mailbox_created_at ON attempts (mailbox, created_at)`,
		`CREATE INDEX attempts_outcome_created_at ON attempts (outcome, created_at)`,
	}},
	{"attempts_round_id", []string{
		`ALTER TABLE attempts ADD COLUMN round_id text NOT NULL DEFAULT ''`,
		`CREATE INDEX attempts_round_id ON attempts (round_id)`,
	}},
}

// migrationLock is the key of the advisory lock that serialises agents
// migrating one database at once.
const migrationLock = 0x6f7470726f6265 // "otprobe"

// OpenPostgres connects to the database at url (a postgres:// URL or a
// keyword/value string; pool settings such as pool_max_conns included)
// and migrates it to the current schema. Errors never contain the URL,
// which may hold a password.
func OpenPostgres(ctx context.Context, url string) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, errors.New("store: the PostgreSQL URL does not parse (not shown: it may hold a password)")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	if err := migratePostgres(ctx, pool, postgresMigrations); err != nil {
		pool.Close()
		return nil, err
	}
	ph := make([]string, numColumns)
	set := make([]string, 0, numColumns-1)
	for i, c := range strings.Split(columns, ",") {
		ph[i] = "$" + strconv.Itoa(i+1)
		if i > 0 {
			set = append(set, strings.TrimSpace(c)+" = $"+strconv.Itoa(i))
		}
	}
	return &Postgres{
		pool:   pool,
		insert: `INSERT INTO attempts (` + columns + `) VALUES (` + strings.Join(ph, ", ") + `)`,
		update: `UPDATE attempts SET ` + strings.Join(set, ", ") + ` WHERE id = $` + strconv.Itoa(numColumns),
		now:    time.Now,
	}, nil
}

// migratePostgres applies the migrations not yet recorded, each in a
// transaction holding the advisory lock, so agents starting together
// migrate once.
func migratePostgres(ctx context.Context, pool *pgxpool.Pool, ms []pgMigration) error {
	// step 0 only creates schema_migrations and checks the version.
	step := func(version int, m pgMigration) error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
				version    integer NOT NULL PRIMARY KEY,
				name       text    NOT NULL,
				applied_at bigint  NOT NULL
			)`); err != nil {
				return err
			}
			var current int
			if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
				return err
			}
			if current > len(ms) {
				return fmt.Errorf("%w: database is at version %d, this build knows %d", ErrSchemaTooNew, current, len(ms))
			}
			if version == 0 || current >= version {
				return nil
			}
			for _, s := range m.stmts {
				if _, err := tx.Exec(ctx, s); err != nil {
					return err
				}
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				version, m.name, time.Now().UnixMilli())
			return err
		})
	}
	if err := step(0, pgMigration{}); err != nil {
		return fmt.Errorf("store: postgres migrations: %w", err)
	}
	for i, m := range ms {
		if err := step(i+1, m); err != nil {
			return fmt.Errorf("store: postgres migration %d (%s): %w", i+1, m.name, err)
		}
	}
	return nil
}

// Close closes the pool.
func (p *Postgres) Close() error {
	p.pool.Close()
	return nil
}

// Create inserts a new attempt.
func (p *Postgres) Create(ctx context.Context, a *attempt.Attempt) error {
	if err := checkAttempt(a); err != nil {
		return fmt.Errorf("store: create attempt: %w", err)
	}
	vals, err := values(a, p.now())
	if err != nil {
		return fmt.Errorf("store: create attempt %q: %w", a.ID, err)
	}
	if _, err := p.pool.Exec(ctx, p.insert, vals...); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "attempts_pkey" {
			return fmt.Errorf("store: create attempt %q: %w", a.ID, ErrDuplicate)
		}
		return fmt.Errorf("store: create attempt %q: %w", a.ID, err)
	}
	return nil
}

// Update replaces the stored attempt with a's ID.
func (p *Postgres) Update(ctx context.Context, a *attempt.Attempt) error {
	if err := checkAttempt(a); err != nil {
		return fmt.Errorf("store: update attempt: %w", err)
	}
	vals, err := values(a, p.now())
	if err != nil {
		return fmt.Errorf("store: update attempt %q: %w", a.ID, err)
	}
	tag, err := p.pool.Exec(ctx, p.update, append(vals[1:], a.ID)...)
	if err != nil {
		return fmt.Errorf("store: update attempt %q: %w", a.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: update attempt %q: %w", a.ID, attempt.ErrNotFound)
	}
	return nil
}

// Get returns the attempt with the given ID.
func (p *Postgres) Get(ctx context.Context, id string) (*attempt.Attempt, error) {
	a, err := scanAttempt(p.pool.QueryRow(ctx, `SELECT `+columns+` FROM attempts WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("store: get attempt %q: %w", id, attempt.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get attempt %q: %w", id, err)
	}
	return a, nil
}

// Pending returns every attempt whose outcome is not final, oldest first.
func (p *Postgres) Pending(ctx context.Context) ([]*attempt.Attempt, error) {
	return p.query(ctx, "pending", fmt.Sprintf(pendingQuery, "$1"), string(attempt.OutcomePending))
}

// List returns the attempts matching f, oldest first, like SQLite.List.
func (p *Postgres) List(ctx context.Context, f attempt.Filter) ([]*attempt.Attempt, error) {
	q, args, err := listQuery(f, func(n int) string { return "$" + strconv.Itoa(n) })
	if err != nil {
		return nil, fmt.Errorf("store: list attempts: %w", err)
	}
	return p.query(ctx, "list", q, args...)
}

func (p *Postgres) query(ctx context.Context, op, q string, args ...any) ([]*attempt.Attempt, error) {
	rows, err := p.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s attempts: %w", op, err)
	}
	defer rows.Close()
	return collectAttempts(op, rows)
}
