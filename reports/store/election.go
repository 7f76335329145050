package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Election is one agent's part in choosing, per route, the one agent
// that takes its decisions when agents share a PostgreSQL store. The
// leader holds a session advisory lock on a connection of its own: when
// the leader dies (or loses its connection) the session ends, PostgreSQL
// releases the lock, and the next agent to try takes it. Each agent also
// holds a presence lock of its own name for as long as it runs, so the
// leader knows which agents are alive without waiting for them.
//
// Lock keys are (class, hash of the schema and the name), so agents of
// different schemas of one database do not contend.
type Election struct {
	dsn   string
	agent string
	// silent is how long the session may go without a word from this
	// agent before PostgreSQL ends it (idle_session_timeout): a leader
	// whose host died or whose network is cut loses its locks then,
	// not when TCP notices (hours). Agents speak every refresh (2 s).
	silent time.Duration

	mu     sync.Mutex
	conn   *pgx.Conn
	schema string
	held   map[string]bool
}

// Advisory lock classes (the first key of the two-key form).
const (
	leaderLockClass   = 0x6f74 // "ot"
	presenceLockClass = 0x6f75
)

// DefaultElectionSilence is Election's default idle_session_timeout.
const DefaultElectionSilence = 15 * time.Second

// ErrNoElection is returned by DB.Election on SQLite: one agent owns the
// file and always decides.
var ErrNoElection = errors.New("store: leader election needs PostgreSQL")

// Election returns agent's election on this PostgreSQL store; it
// connects on first use.
func (s *DB) Election(agent string) (*Election, error) {
	if !s.pg {
		return nil, ErrNoElection
	}
	return &Election{dsn: s.dsn, agent: agent, held: map[string]bool{}, silent: DefaultElectionSilence}, nil
}

// connect opens the election's connection and takes the presence lock.
// Called with e.mu held.
func (e *Election) connect(ctx context.Context) error {
	if e.conn != nil && !e.conn.IsClosed() {
		return nil
	}
	e.held = map[string]bool{}
	cfg, err := pgx.ParseConfig(e.dsn)
	if err != nil {
		return errors.New("the PostgreSQL URL does not parse (not shown: it may hold a password)")
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return err
	}
	// Best effort (idle_session_timeout is PostgreSQL 14+; keepalives
	// also cover a peer that vanished while the server waits to write).
	for _, set := range []string{
		fmt.Sprintf("SET idle_session_timeout = %d", e.silent.Milliseconds()),
		"SET tcp_keepalives_idle = 10", "SET tcp_keepalives_interval = 5", "SET tcp_keepalives_count = 3",
	} {
		conn.Exec(cctx, set) //nolint:errcheck // an older server keeps its defaults
	}
	var ok bool
	if err := conn.QueryRow(cctx, `SELECT current_schema()`).Scan(&e.schema); err != nil {
		conn.Close(context.Background())
		return err
	}
	if err := conn.QueryRow(cctx, `SELECT pg_try_advisory_lock($1, $2)`, presenceLockClass, lockKey(e.schema, e.agent)).Scan(&ok); err != nil {
		conn.Close(context.Background())
		return err
	}
	if !ok {
		// Another process runs with the same agent name: both keep
		// working, but the store cannot tell their rounds apart.
		conn.Close(context.Background())
		return fmt.Errorf("another running agent is named %q: give each agent its own name (agent:)", e.agent)
	}
	e.conn = conn
	return nil
}

// drop forgets a broken connection (and with it every lock). Called with
// e.mu held.
func (e *Election) drop() {
	if e.conn != nil {
		e.conn.Close(context.Background())
	}
	e.conn, e.held = nil, map[string]bool{}
}

// Leader reports whether this agent decides route now, taking the lock
// when it is free. An error (the store unreachable) is reported as not
// leading: an agent that cannot prove it holds the lock must not decide.
func (e *Election) Leader(ctx context.Context, route string) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.connect(ctx); err != nil {
		return false, fmt.Errorf("store: election: %w", err)
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if e.held[route] {
		// The lock lives as long as the session: a live session still holds it.
		if err := e.conn.Ping(qctx); err != nil {
			e.drop()
			return false, fmt.Errorf("store: election: %w", err)
		}
		return true, nil
	}
	var ok bool
	if err := e.conn.QueryRow(qctx, `SELECT pg_try_advisory_lock($1, $2)`, leaderLockClass, lockKey(e.schema, route)).Scan(&ok); err != nil {
		e.drop()
		return false, fmt.Errorf("store: election: %w", err)
	}
	e.held[route] = ok
	return ok, nil
}

// Live reports which of agents are running now (hold their presence
// lock on this store).
func (e *Election) Live(ctx context.Context, agents []string) (map[string]bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.connect(ctx); err != nil {
		return nil, fmt.Errorf("store: election: %w", err)
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rows, err := e.conn.Query(qctx, `SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND objsubid = 2 AND classid::bigint = $1
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, int64(presenceLockClass))
	if err != nil {
		e.drop()
		return nil, fmt.Errorf("store: election: %w", err)
	}
	present := map[int64]bool{}
	for rows.Next() {
		var k int64
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: election: %w", err)
		}
		present[k] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		e.drop()
		return nil, fmt.Errorf("store: election: %w", err)
	}
	out := map[string]bool{}
	for _, a := range agents {
		out[a] = present[int64(lockKey(e.schema, a))]
	}
	return out, nil
}

// Close ends the session: every lock it held is released.
func (e *Election) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conn != nil {
		// Hand the routes over now: closing the connection alone frees the
		// locks only once the server's backend has gone, a moment later.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		e.conn.Exec(ctx, `SELECT pg_advisory_unlock_all()`)
		cancel()
	}
	e.drop()
	return nil
}

// lockKey is the second key of a lock on name in schema: a non-negative
// int4 (pg_locks shows it as an oid).
func lockKey(schema, name string) int32 {
	h := fnv.New32a()
	h.Write([]byte(schema + "\x00" + name))
	return int32(h.Sum32() & 0x7fffffff)
}
