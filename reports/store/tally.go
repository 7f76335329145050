package store

import (
	"context"
	"fmt"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
)

// TallyFilter selects the decided attempts an SLI counts.
type TallyFilter struct {
	From, To time.Time // CreatedAt in [From, To)
	Sender   string    // "" for all
	Provider string    // "" for all
	// Latency is the SLO's bound: a good attempt reached the inbox within it.
	Latency time.Duration
}

// Tally counts decided attempts matching f (total) and those in the inbox
// within f.Latency of their submission (good), in one indexed query rather
// than by reading the attempts.
func (s *SQLite) Tally(ctx context.Context, f TallyFilter) (good, total int64, err error) {
	q, args := tallyQuery(f, "")
	if err := s.r.QueryRowContext(ctx, q, args...).Scan(&total, &good); err != nil {
		return 0, 0, fmt.Errorf("store: tally attempts: %w", err)
	}
	return good, total, nil
}

// AgentTally is one agent's part of a Tally.
type AgentTally struct {
	Agent       string // "" for attempts stored before attempts named their agent
	Good, Total int64
}

// TallyAgents is Tally per agent that has attempts matching f, by agent.
func (s *DB) TallyAgents(ctx context.Context, f TallyFilter) ([]AgentTally, error) {
	q, args := tallyQuery(f, "agent")
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: tally attempts by agent: %w", err)
	}
	defer rows.Close()
	var out []AgentTally
	for rows.Next() {
		var t AgentTally
		if err := rows.Scan(&t.Total, &t.Good, &t.Agent); err != nil {
			return nil, fmt.Errorf("store: tally attempts by agent: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: tally attempts by agent: %w", err)
	}
	return out, nil
}

// tallyQuery is the SELECT of a tally, grouped by groupBy when not "".
func tallyQuery(f TallyFilter, groupBy string) (string, []any) {
	sel := ""
	if groupBy != "" {
		sel = ", " + groupBy
	}
	q := `SELECT count(*), coalesce(sum(CASE WHEN outcome = ? AND seen_at IS NOT NULL AND submitted_at IS NOT NULL
		AND seen_at - submitted_at <= ? THEN 1 ELSE 0 END), 0)` + sel + ` FROM attempts
		WHERE created_at >= ? AND created_at < ? AND outcome != ?`
	args := []any{string(attempt.OutcomeInbox), f.Latency.Milliseconds(), f.From.UnixMilli(), f.To.UnixMilli(), string(attempt.OutcomePending)}
	if f.Sender != "" {
		q += ` AND sender = ?`
		args = append(args, f.Sender)
	}
	if f.Provider != "" {
		q += ` AND provider = ?`
		args = append(args, f.Provider)
	}
	if groupBy != "" {
		q += ` GROUP BY ` + groupBy + ` ORDER BY ` + groupBy
	}
	return q, args
}
