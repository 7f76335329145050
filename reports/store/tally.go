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
	q := `SELECT count(*), coalesce(sum(CASE WHEN outcome = ? AND seen_at IS NOT NULL AND submitted_at IS NOT NULL
		AND seen_at - submitted_at <= ? THEN 1 ELSE 0 END), 0) FROM attempts
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
	if err := s.r.QueryRowContext(ctx, q, args...).Scan(&total, &good); err != nil {
		return 0, 0, fmt.Errorf("store: tally attempts: %w", err)
	}
	return good, total, nil
}
