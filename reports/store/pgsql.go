package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// The store's SQL is written once, for SQLite: ? placeholders, INTEGER
// and TEXT columns, STRICT tables. On PostgreSQL it runs through pgDialect,
// a database/sql connector around pgx that rewrites each statement as it
// passes: ? becomes $n, INTEGER becomes BIGINT, an INTEGER primary key
// becomes BIGSERIAL and STRICT is dropped, json_each(col) alias becomes
// json_array_elements_text(col::json) AS alias(value); bool arguments are sent as 0/1
// like SQLite stores them. So both drivers share one schema history and
// one implementation, and the same test suite runs against both.

// openPostgresDB opens dsn as a *sql.DB speaking the store's SQL. Errors
// never contain the DSN (it may hold a password).
func openPostgresDB(dsn string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("store: the PostgreSQL URL does not parse (not shown: it may hold a password)")
	}
	return sql.OpenDB(pgConnector{stdlib.GetConnector(*cfg)}), nil
}

type pgConnector struct{ next driver.Connector }

func (c pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.next.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return pgConn{conn}, nil
}

func (c pgConnector) Driver() driver.Driver { return c.next.Driver() }

// pgConn forwards to pgx's stdlib connection with rewritten statements.
type pgConn struct{ driver.Conn }

type pgxConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
}

func (c pgConn) inner() pgxConn { return c.Conn.(pgxConn) }

func (c pgConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c pgConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	st, err := c.inner().PrepareContext(ctx, pgSQL(query))
	if err != nil {
		return nil, err
	}
	return pgStmt{st}, nil
}

func (c pgConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.inner().BeginTx(ctx, opts)
}

func (c pgConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.inner().ExecContext(ctx, pgSQL(query), pgArgs(args))
}

func (c pgConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.inner().QueryContext(ctx, pgSQL(query), pgArgs(args))
}

func (c pgConn) Ping(ctx context.Context) error         { return c.inner().Ping(ctx) }
func (c pgConn) ResetSession(ctx context.Context) error { return c.inner().ResetSession(ctx) }
func (c pgConn) IsValid() bool {
	v, ok := c.Conn.(driver.Validator)
	return !ok || v.IsValid()
}
func (c pgConn) CheckNamedValue(nv *driver.NamedValue) error { return nil } // pgx encodes any Go value

type pgStmt struct{ driver.Stmt }

func (s pgStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.Stmt.(driver.StmtExecContext).ExecContext(ctx, pgArgs(args))
}

func (s pgStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, pgArgs(args))
}

// pgArgs sends bools as 0/1: the columns are BIGINT on both drivers.
func pgArgs(args []driver.NamedValue) []driver.NamedValue {
	for i, a := range args {
		if b, ok := a.Value.(bool); ok {
			args[i].Value = map[bool]int64{false: 0, true: 1}[b]
		}
	}
	return args
}

var (
	pgAutoKey = regexp.MustCompile(`(?i)\bINTEGER\s+NOT\s+NULL\s+PRIMARY\s+KEY(\s+AUTOINCREMENT)?`)
	pgInteger = regexp.MustCompile(`(?i)\bINTEGER\b`)
	pgStrict  = regexp.MustCompile(`(?i)\)\s*STRICT\s*$`)
	pgJSON    = regexp.MustCompile(`json_each\(([A-Za-z_.]+)\)\s+([A-Za-z_]+)`)
)

// pgSQL rewrites one statement of the store's SQLite dialect.
func pgSQL(q string) string {
	if trimmed := strings.TrimSpace(q); len(trimmed) > 6 && strings.EqualFold(trimmed[:6], "CREATE") || strings.HasPrefix(strings.ToUpper(trimmed), "ALTER") {
		q = pgAutoKey.ReplaceAllString(q, "BIGSERIAL PRIMARY KEY")
		q = pgInteger.ReplaceAllString(q, "BIGINT")
		q = pgStrict.ReplaceAllString(strings.TrimSpace(q), ")")
	}
	q = pgJSON.ReplaceAllString(q, "json_array_elements_text($1::json) AS $2(value)")
	return rebind(q)
}

// rebind numbers ? placeholders outside string literals and quoted names.
func rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n := 0
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// isUniqueViolation reports a PostgreSQL unique or primary key violation.
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}
