package store

import (
	"context"
	"fmt"
	"time"
)

// Retention is how long each kind of history is kept; 0 keeps it forever.
type Retention struct {
	Attempts time.Duration // decided attempts not referenced by an alert, a transition or an incident
	DNS      time.Duration // DNS snapshots (the newest of a domain is always kept) and changes
	History  time.Duration // route transitions and resolved incidents
}

// PruneBatch is how many rows one pruning transaction removes at most:
// small, so the writer is never held long and probing never waits.
const PruneBatch = 500

// Prune tables and their deletes: each removes at most one batch ($1
// cutoff, $2 limit) and says how many rows went.
var pruneSteps = []struct {
	table, kind string
	stmt        string
}{
	// An attempt stays while an alert or a route transition names it as
	// evidence, or while it lies in an incident of its sender that is
	// kept: a postmortem can always get its evidence back.
	{"attempts", "attempts", `DELETE FROM attempts WHERE id IN (
		SELECT a.id FROM attempts a WHERE a.created_at < ? AND a.outcome NOT IN ('pending', '')
		AND a.id NOT IN (SELECT j.value FROM alerts, json_each(alerts.evidence) j)
		AND a.id NOT IN (SELECT j.value FROM route_transitions, json_each(route_transitions.evidence) j)
		AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.probe = a.probe AND i.sender = a.sender
			AND a.created_at >= i.started_at AND (i.ended_at IS NULL OR a.created_at <= i.ended_at))
		ORDER BY a.created_at LIMIT ?)`},
	{"dns_snapshots", "dns", `DELETE FROM dns_snapshots WHERE id IN (
		SELECT s.id FROM dns_snapshots s WHERE s.checked_at < ?
		AND s.id != (SELECT max(n.id) FROM dns_snapshots n WHERE n.domain = s.domain) LIMIT ?)`},
	{"dns_changes", "dns", `DELETE FROM dns_changes WHERE id IN (
		SELECT id FROM dns_changes WHERE detected_at < ? LIMIT ?)`},
	// Round verdicts and counted intervals are as fine-grained as
	// attempts and go with them.
	{"route_rounds", "attempts", `DELETE FROM route_rounds WHERE id IN (
		SELECT id FROM route_rounds WHERE started_at < ? LIMIT ?)`},
	{"route_intervals", "attempts", `DELETE FROM route_intervals WHERE id IN (
		SELECT id FROM route_intervals WHERE start < ? LIMIT ?)`},
	{"route_transitions", "history", `DELETE FROM route_transitions WHERE id IN (
		SELECT id FROM route_transitions WHERE at < ? LIMIT ?)`},
	{"incidents", "history", `DELETE FROM incidents WHERE id IN (
		SELECT id FROM incidents WHERE ended_at IS NOT NULL AND ended_at < ? LIMIT ?)`},
}

// Prune removes what r no longer keeps, as of now, in batches of
// PruneBatch rows, each its own short transaction. pruned is called
// after every batch with the table and the rows removed. It stops early
// when ctx ends.
func (s *SQLite) Prune(ctx context.Context, r Retention, now time.Time, pruned func(table string, n int64)) error {
	// History first: an incident or transition that goes releases its
	// attempts for the same run.
	for _, kind := range []string{"history", "dns", "attempts"} {
		keep := map[string]time.Duration{"attempts": r.Attempts, "dns": r.DNS, "history": r.History}[kind]
		if keep <= 0 {
			continue
		}
		cutoff := now.Add(-keep).UnixMilli()
		for _, st := range pruneSteps {
			if st.kind != kind {
				continue
			}
			for ctx.Err() == nil {
				res, err := s.w.ExecContext(ctx, st.stmt, cutoff, PruneBatch)
				if err != nil {
					return fmt.Errorf("store: prune %s: %w", st.table, err)
				}
				n, err := res.RowsAffected()
				if err != nil {
					return fmt.Errorf("store: prune %s: %w", st.table, err)
				}
				if n > 0 && pruned != nil {
					pruned(st.table, n)
				}
				if n < PruneBatch {
					break
				}
			}
		}
	}
	return ctx.Err()
}
