package store

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
)

// columns is the attempts column list, in the order of values and scan.
const columns = `id, probe, sender, mailbox, provider, token, code, message_id,
	created_at, deadline, latency_slo_ms, outcome, late,
	submitted_at, seen_at, folder, internal_date, received_at,
	smtp_stage, smtp_code, smtp_enhanced, smtp_reply, transcript, header,
	trusted, authserv_id, spf, dkim, dmarc, arc, verdicts,
	diagnosis, detail, updated_at, round_id, agent`

const numColumns = 36

// millis encodes a time as UTC Unix milliseconds; the zero time is NULL.
func millis(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

// fromMillis decodes what millis wrote.
func fromMillis(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}

// Booleans are Go bools: SQLite binds them as 0/1, PostgreSQL as boolean.

// values returns a's column values in the order of columns.
func values(a *attempt.Attempt, now time.Time) ([]any, error) {
	verdicts, err := json.Marshal(a.Verdicts)
	if err != nil {
		return nil, fmt.Errorf("encode verdicts: %w", err)
	}
	return []any{
		a.ID, a.Probe, a.Sender, a.Mailbox, a.Provider, a.Token, a.Code, a.MessageID,
		a.CreatedAt.UnixMilli(), millis(a.Deadline), a.LatencySLO.Milliseconds(), string(a.Outcome), a.Late,
		millis(a.SubmittedAt), millis(a.SeenAt), a.Folder, millis(a.InternalDate), millis(a.ReceivedAt),
		a.SMTP.Stage, a.SMTP.Code, a.SMTP.Enhanced, a.SMTP.Reply, a.Transcript, a.Header,
		a.Verdicts.Trusted, a.Verdicts.AuthservID, a.Verdicts.SPF, a.Verdicts.DKIM, a.Verdicts.DMARC, a.Verdicts.ARC, string(verdicts),
		a.Diagnosis, a.Detail, now.UnixMilli(), a.RoundID, a.Agent,
	}, nil
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanAttempt reads one row selected with columns. The verdicts JSON is
// the source of truth for Verdicts (it keeps fields added after the
// summary columns); the columns exist for queries.
func scanAttempt(sc scanner) (*attempt.Attempt, error) {
	var (
		a                                                 attempt.Attempt
		outcome, verdicts                                 string
		trusted                                           bool
		latencySLO, createdAt, updatedAt                  int64
		deadline, submitted, seen, internalDate, received sql.NullInt64
		spf, dkim, dmarc, arc, authservID                 string
	)
	err := sc.Scan(
		&a.ID, &a.Probe, &a.Sender, &a.Mailbox, &a.Provider, &a.Token, &a.Code, &a.MessageID,
		&createdAt, &deadline, &latencySLO, &outcome, &a.Late,
		&submitted, &seen, &a.Folder, &internalDate, &received,
		&a.SMTP.Stage, &a.SMTP.Code, &a.SMTP.Enhanced, &a.SMTP.Reply, &a.Transcript, &a.Header,
		&trusted, &authservID, &spf, &dkim, &dmarc, &arc, &verdicts,
		&a.Diagnosis, &a.Detail, &updatedAt, &a.RoundID, &a.Agent,
	)
	if err != nil {
		return nil, err
	}
	a.CreatedAt = time.UnixMilli(createdAt).UTC()
	a.Deadline = fromMillis(deadline)
	a.LatencySLO = time.Duration(latencySLO) * time.Millisecond
	a.Outcome = attempt.Outcome(outcome)
	a.SubmittedAt = fromMillis(submitted)
	a.SeenAt = fromMillis(seen)
	a.InternalDate = fromMillis(internalDate)
	a.ReceivedAt = fromMillis(received)
	if err := json.Unmarshal([]byte(verdicts), &a.Verdicts); err != nil {
		return nil, fmt.Errorf("attempt %q: decode verdicts: %w", a.ID, err)
	}
	return &a, nil
}

// listQuery builds the SELECT of List for f; ph(n) is the n-th (from 1)
// placeholder of the dialect.
func listQuery(f attempt.Filter, ph func(n int) string) (string, []any, error) {
	if f.Limit < 0 {
		return "", nil, fmt.Errorf("negative limit %d", f.Limit)
	}
	var (
		where []string
		args  []any
	)
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, cond+ph(len(args)))
	}
	if !f.From.IsZero() {
		add("created_at >= ", f.From.UnixMilli())
	}
	if !f.To.IsZero() {
		add("created_at < ", f.To.UnixMilli())
	}
	if f.Probe != "" {
		add("probe = ", f.Probe)
	}
	if f.Sender != "" {
		add("sender = ", f.Sender)
	}
	if f.Mailbox != "" {
		add("mailbox = ", f.Mailbox)
	}
	if f.RoundID != "" {
		add("round_id = ", f.RoundID)
	}
	if f.Agent != "" {
		add("agent = ", f.Agent)
	}
	if f.Outcome != "" {
		add("outcome = ", string(f.Outcome))
	}
	q := `SELECT ` + columns + ` FROM attempts`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY created_at, id`
	if f.Limit > 0 {
		args = append(args, f.Limit)
		q += ` LIMIT ` + ph(len(args))
	}
	return q, args, nil
}

// pendingQuery selects the attempts not decided yet (outcome pending or
// ""); its one argument is attempt.OutcomePending.
const pendingQuery = `SELECT ` + columns + ` FROM attempts
	WHERE outcome IN (?, '') ORDER BY created_at, id`

// agentPendingQuery is pendingQuery for one agent (PostgreSQL): its
// arguments are attempt.OutcomePending and the agent.
const agentPendingQuery = `SELECT ` + columns + ` FROM attempts
	WHERE outcome IN (?, '') AND agent = ? ORDER BY created_at, id`

// attemptRows is what database/sql's and pgx's result sets have in common.
type attemptRows interface {
	scanner
	Next() bool
	Err() error
}

// collectAttempts reads every row of a query selecting columns.
func collectAttempts(op string, rows attemptRows) ([]*attempt.Attempt, error) {
	var out []*attempt.Attempt
	for rows.Next() {
		a, err := scanAttempt(rows)
		if err != nil {
			return nil, fmt.Errorf("store: %s attempts: %w", op, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s attempts: %w", op, err)
	}
	return out, nil
}
