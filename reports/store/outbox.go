package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// AlertRecord is the state of one alert, keyed by its fingerprint, so that
// deduplication (a firing alert is notified once) survives a restart.
type AlertRecord struct {
	Key         string
	Name        string
	Status      string // firing | resolved
	Labels      map[string]string
	Annotations map[string]string
	Evidence    []string
	StartsAt    time.Time
	EndsAt      time.Time // zero while firing
}

// OutboxEntry is one notification to deliver to one notifier. It is
// stored in the same transaction as the change it reports and removed from
// the queue only once the notifier accepted it.
type OutboxEntry struct {
	ID        int64
	Notifier  string // the notifier's name, e.g. "webhook:ops"
	Kind      string // alert | transition
	Payload   []byte // JSON, the notifier's input
	CreatedAt time.Time
	NextAt    time.Time // not before
	Tries     int
	LastError string
}

// SaveAlert stores a's state and queues out in one transaction.
func (s *SQLite) SaveAlert(ctx context.Context, a AlertRecord, out []OutboxEntry) error {
	labels, err := json.Marshal(orEmpty(a.Labels))
	if err != nil {
		return err
	}
	ann, err := json.Marshal(orEmpty(a.Annotations))
	if err != nil {
		return err
	}
	ev, err := jsonList(a.Evidence)
	if err != nil {
		return err
	}
	return s.tx(ctx, "save alert "+a.Name, func(tx *sql.Tx) error {
		now := s.now().UnixMilli()
		if _, err := tx.ExecContext(ctx, `INSERT INTO alerts (key, name, status, labels, annotations, evidence,
			starts_at, ends_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET name = excluded.name, status = excluded.status, labels = excluded.labels,
			annotations = excluded.annotations, evidence = excluded.evidence, starts_at = excluded.starts_at,
			ends_at = excluded.ends_at, updated_at = excluded.updated_at`,
			a.Key, a.Name, a.Status, string(labels), string(ann), ev, a.StartsAt.UnixMilli(), millis(a.EndsAt), now); err != nil {
			return err
		}
		return enqueue(ctx, tx, now, out)
	})
}

// alertColumns are what scanAlerts reads, in its order.
const alertColumns = `key, name, status, labels, annotations, evidence, starts_at, ends_at`

// FiringAlerts returns the alerts whose last state is firing.
func (s *SQLite) FiringAlerts(ctx context.Context) ([]AlertRecord, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+alertColumns+` FROM alerts WHERE status = 'firing' ORDER BY starts_at`)
	if err != nil {
		return nil, fmt.Errorf("store: firing alerts: %w", err)
	}
	out, err := scanAlerts(rows)
	if err != nil {
		return nil, fmt.Errorf("store: firing alerts: %w", err)
	}
	return out, nil
}

// scanAlerts reads rows of alertColumns and closes them.
func scanAlerts(rows *sql.Rows) ([]AlertRecord, error) {
	defer rows.Close()
	var out []AlertRecord
	for rows.Next() {
		var a AlertRecord
		var labels, ann, ev string
		var starts int64
		var ends sql.NullInt64
		if err := rows.Scan(&a.Key, &a.Name, &a.Status, &labels, &ann, &ev, &starts, &ends); err != nil {
			return nil, err
		}
		for _, f := range []struct {
			name, s string
			v       any
		}{{"labels", labels, &a.Labels}, {"annotations", ann, &a.Annotations}, {"evidence", ev, &a.Evidence}} {
			if err := json.Unmarshal([]byte(f.s), f.v); err != nil {
				return nil, fmt.Errorf("alert %q %s: %w", a.Key, f.name, err)
			}
		}
		a.StartsAt, a.EndsAt = time.UnixMilli(starts).UTC(), fromMillis(ends)
		out = append(out, a)
	}
	return out, rows.Err()
}

// Enqueue queues notifications on their own.
func (s *SQLite) Enqueue(ctx context.Context, out []OutboxEntry) error {
	return s.tx(ctx, "enqueue notifications", func(tx *sql.Tx) error {
		return enqueue(ctx, tx, s.now().UnixMilli(), out)
	})
}

func enqueue(ctx context.Context, tx *sql.Tx, now int64, out []OutboxEntry) error {
	for i := range out {
		e := &out[i]
		next := now
		if !e.NextAt.IsZero() {
			next = e.NextAt.UnixMilli()
		}
		if err := tx.QueryRowContext(ctx, `INSERT INTO outbox (notifier, kind, payload, created_at, next_at, tries, last_error)
			VALUES (?, ?, ?, ?, ?, 0, '') RETURNING id`, e.Notifier, e.Kind, string(e.Payload), now, next).Scan(&e.ID); err != nil {
			return err
		}
	}
	return nil
}

// OutboxLease is how long an entry DueOutbox handed to one agent is not
// handed to another sharing the store (PostgreSQL): its delivery's time.
// An agent that dies meanwhile leaves it to another after the lease.
const OutboxLease = 2 * time.Minute

// outboxClaimLock serialises agents claiming outbox entries.
const outboxClaimLock = 0x6f7470726f6266

// DueOutbox returns undelivered entries due at now, oldest first, at most
// limit. Where agents share the store (PostgreSQL) it claims them: they
// are not due again for OutboxLease (Delivered or Retry settle them
// before), and an entry waits while an earlier one of its notifier is
// claimed, so each notification goes out once and in order.
func (s *SQLite) DueOutbox(ctx context.Context, now time.Time, limit int) ([]OutboxEntry, error) {
	if s.pg {
		return s.claimOutbox(ctx, now, limit)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, notifier, kind, payload, created_at, next_at, tries, last_error
		FROM outbox WHERE delivered_at IS NULL AND next_at <= ? ORDER BY id LIMIT ?`, now.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("store: due notifications: %w", err)
	}
	defer rows.Close()
	return scanOutbox(rows)
}

// claimOutbox is DueOutbox on PostgreSQL: one transaction, serialised by
// an advisory lock, moves the due entries' next_at to the lease's end.
func (s *SQLite) claimOutbox(ctx context.Context, now time.Time, limit int) ([]OutboxEntry, error) {
	var out []OutboxEntry
	err := s.tx(ctx, "claim due notifications", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, int64(outboxClaimLock)); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `UPDATE outbox SET next_at = ? WHERE id IN (
			SELECT o.id FROM outbox o WHERE o.delivered_at IS NULL AND o.next_at <= ?
			AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.notifier = o.notifier AND e.delivered_at IS NULL
				AND e.id < o.id AND e.next_at > ?)
			ORDER BY o.id LIMIT ?)
			RETURNING id, notifier, kind, payload, created_at, next_at, tries, last_error`,
			now.Add(OutboxLease).UnixMilli(), now.UnixMilli(), now.UnixMilli(), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		out, err = scanOutbox(rows)
		return err
	})
	slices.SortFunc(out, func(a, b OutboxEntry) int { return cmp.Compare(a.ID, b.ID) })
	return out, err
}

func scanOutbox(rows *sql.Rows) ([]OutboxEntry, error) {
	var out []OutboxEntry
	for rows.Next() {
		var e OutboxEntry
		var payload string
		var created, next int64
		if err := rows.Scan(&e.ID, &e.Notifier, &e.Kind, &payload, &created, &next, &e.Tries, &e.LastError); err != nil {
			return nil, fmt.Errorf("store: due notifications: %w", err)
		}
		e.Payload = []byte(payload)
		e.CreatedAt, e.NextAt = time.UnixMilli(created).UTC(), time.UnixMilli(next).UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: due notifications: %w", err)
	}
	return out, nil
}

// NextOutbox returns when the earliest undelivered entry is due; ok is
// false when the queue is empty.
func (s *SQLite) NextOutbox(ctx context.Context) (at time.Time, ok bool, err error) {
	var next sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT min(next_at) FROM outbox WHERE delivered_at IS NULL`).Scan(&next); err != nil {
		return time.Time{}, false, fmt.Errorf("store: next notification: %w", err)
	}
	return fromMillis(next), next.Valid, nil
}

// Delivered marks an entry delivered.
func (s *SQLite) Delivered(ctx context.Context, id int64, at time.Time) error {
	if _, err := s.w.ExecContext(ctx, `UPDATE outbox SET delivered_at = ?, tries = tries + 1, last_error = '' WHERE id = ?`,
		at.UnixMilli(), id); err != nil {
		return fmt.Errorf("store: notification %d delivered: %w", id, err)
	}
	return nil
}

// Retry records a failed delivery of e and when to try again. The
// notifier's later entries wait at least as long, so that a notifier
// receives its notifications in order (a resolved never before its firing).
func (s *SQLite) Retry(ctx context.Context, e OutboxEntry, next time.Time, cause string) error {
	return s.tx(ctx, fmt.Sprintf("retry notification %d", e.ID), func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE outbox SET next_at = ?, tries = tries + 1, last_error = ? WHERE id = ?`,
			next.UnixMilli(), cause, e.ID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE outbox SET next_at = CASE WHEN next_at > ? THEN next_at ELSE ? END
			WHERE notifier = ? AND delivered_at IS NULL AND id > ?`, next.UnixMilli(), next.UnixMilli(), e.Notifier, e.ID)
		return err
	})
}

// UndeliveredCount is the length of the queue.
func (s *SQLite) UndeliveredCount(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE delivered_at IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: undelivered notifications: %w", err)
	}
	return n, nil
}

// PruneOutbox deletes entries delivered before cutoff.
func (s *SQLite) PruneOutbox(ctx context.Context, cutoff time.Time) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?`, cutoff.UnixMilli()); err != nil {
		return fmt.Errorf("store: prune notifications: %w", err)
	}
	return nil
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
