package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/otpprobe/otpprobe/verify/dnscheck"
)

// dnsSnapshotsMigration (version 3) keeps the DNS posture history: every
// check's report (findings and the normalised RRsets read), the baseline
// pinned per domain, and the changes seen against either.
var dnsSnapshotsMigration = migration{3, "dns_snapshots", execAll(
	`CREATE TABLE dns_snapshots (
		id         INTEGER NOT NULL PRIMARY KEY,
		domain     TEXT    NOT NULL,
		checked_at INTEGER NOT NULL,
		worst      TEXT    NOT NULL,
		report     TEXT    NOT NULL
	) STRICT`,
	`CREATE INDEX dns_snapshots_domain_checked_at ON dns_snapshots (domain, checked_at)`,
	`CREATE TABLE dns_baselines (
		domain    TEXT    NOT NULL PRIMARY KEY,
		pinned_at INTEGER NOT NULL,
		report    TEXT    NOT NULL
	) STRICT`,
	`CREATE TABLE dns_changes (
		id          INTEGER NOT NULL PRIMARY KEY,
		domain      TEXT    NOT NULL,
		detected_at INTEGER NOT NULL,
		against     TEXT    NOT NULL CHECK (against IN ('previous', 'baseline')),
		name        TEXT    NOT NULL,
		type        TEXT    NOT NULL,
		before      TEXT,
		after       TEXT
	) STRICT`,
	`CREATE INDEX dns_changes_domain_detected_at ON dns_changes (domain, detected_at)`,
)}

// What a DNS change was detected against.
const (
	AgainstPrevious = "previous" // the snapshot before
	AgainstBaseline = "baseline" // the pinned baseline
)

// DNSChange is a stored change of one RRset.
type DNSChange struct {
	Domain     string    `json:"domain"`
	DetectedAt time.Time `json:"detected_at"`
	Against    string    `json:"against"` // AgainstPrevious or AgainstBaseline
	dnscheck.Change
}

// SaveDNSSnapshot stores a check's report.
func (s *SQLite) SaveDNSSnapshot(ctx context.Context, rep dnscheck.Report) error {
	data, err := json.Marshal(rep)
	if err != nil {
		return fmt.Errorf("store: encode DNS snapshot: %w", err)
	}
	worst := "none"
	if w := rep.Worst(); w > 0 {
		worst = w.String()
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO dns_snapshots (domain, checked_at, worst, report) VALUES (?, ?, ?, ?)`,
		rep.Domain, rep.CheckedAt.UnixMilli(), worst, string(data))
	if err != nil {
		return fmt.Errorf("store: save DNS snapshot of %s: %w", rep.Domain, err)
	}
	return nil
}

// LatestDNSSnapshot returns the newest report of domain; false when there
// is none.
func (s *SQLite) LatestDNSSnapshot(ctx context.Context, domain string) (dnscheck.Report, bool, error) {
	return s.oneReport(ctx, `SELECT report FROM dns_snapshots WHERE domain = ? ORDER BY checked_at DESC, id DESC LIMIT 1`, domain)
}

// DNSSnapshotAt returns the report of domain checked closest to t, before
// or after; false when there is none.
func (s *SQLite) DNSSnapshotAt(ctx context.Context, domain string, t time.Time) (dnscheck.Report, bool, error) {
	ms := t.UnixMilli()
	return s.oneReport(ctx, `SELECT report FROM (
			SELECT * FROM (SELECT report, checked_at FROM dns_snapshots WHERE domain = ? AND checked_at <= ? ORDER BY checked_at DESC LIMIT 1) AS before
			UNION ALL
			SELECT * FROM (SELECT report, checked_at FROM dns_snapshots WHERE domain = ? AND checked_at > ? ORDER BY checked_at ASC LIMIT 1) AS after
		) AS nearest ORDER BY abs(checked_at - ?) LIMIT 1`, domain, ms, domain, ms, ms)
}

// PinDNSBaseline makes rep the baseline of its domain, replacing any
// earlier one.
func (s *SQLite) PinDNSBaseline(ctx context.Context, rep dnscheck.Report, at time.Time) error {
	data, err := json.Marshal(rep)
	if err != nil {
		return fmt.Errorf("store: encode DNS baseline: %w", err)
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO dns_baselines (domain, pinned_at, report) VALUES (?, ?, ?)
		ON CONFLICT (domain) DO UPDATE SET pinned_at = excluded.pinned_at, report = excluded.report`,
		rep.Domain, at.UnixMilli(), string(data))
	if err != nil {
		return fmt.Errorf("store: pin DNS baseline of %s: %w", rep.Domain, err)
	}
	return nil
}

// DNSBaseline returns the pinned baseline of domain; false when none was
// pinned.
func (s *SQLite) DNSBaseline(ctx context.Context, domain string) (dnscheck.Report, bool, error) {
	return s.oneReport(ctx, `SELECT report FROM dns_baselines WHERE domain = ?`, domain)
}

// SaveDNSChanges stores the changes found in one check, in one
// transaction.
func (s *SQLite) SaveDNSChanges(ctx context.Context, changes []DNSChange) error {
	if len(changes) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: save DNS changes: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	for _, c := range changes {
		before, err := rrsetJSON(c.Before)
		if err != nil {
			return err
		}
		after, err := rrsetJSON(c.After)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO dns_changes (domain, detected_at, against, name, type, before, after)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, c.Domain, c.DetectedAt.UnixMilli(), c.Against, c.Name, c.Type, before, after); err != nil {
			return fmt.Errorf("store: save DNS change of %s %s: %w", c.Name, c.Type, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: save DNS changes: %w", err)
	}
	return nil
}

// DNSChanges returns the changes of domain detected at or after since,
// oldest first.
func (s *SQLite) DNSChanges(ctx context.Context, domain string, since time.Time) ([]DNSChange, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+dnsChangeColumns+`
		FROM dns_changes WHERE domain = ? AND detected_at >= ? ORDER BY detected_at, id`, domain, since.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store: DNS changes of %s: %w", domain, err)
	}
	out, err := scanDNSChanges(rows)
	if err != nil {
		return nil, fmt.Errorf("store: DNS changes of %s: %w", domain, err)
	}
	return out, nil
}

// dnsChangeColumns are what scanDNSChanges reads, in its order.
const dnsChangeColumns = `domain, detected_at, against, name, type, before, after`

// scanDNSChanges reads rows of dnsChangeColumns and closes them.
func scanDNSChanges(rows *sql.Rows) ([]DNSChange, error) {
	defer rows.Close()
	var out []DNSChange
	for rows.Next() {
		var (
			c             DNSChange
			at            int64
			before, after sql.NullString
		)
		if err := rows.Scan(&c.Domain, &at, &c.Against, &c.Name, &c.Type, &before, &after); err != nil {
			return nil, err
		}
		c.DetectedAt = time.UnixMilli(at).UTC()
		var err error
		if c.Before, err = rrsetFrom(before); err != nil {
			return nil, err
		}
		if c.After, err = rrsetFrom(after); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (s *SQLite) oneReport(ctx context.Context, query string, args ...any) (dnscheck.Report, bool, error) {
	var data string
	err := s.r.QueryRowContext(ctx, query, args...).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return dnscheck.Report{}, false, nil
	}
	if err != nil {
		return dnscheck.Report{}, false, fmt.Errorf("store: read DNS snapshot: %w", err)
	}
	var rep dnscheck.Report
	if err := json.Unmarshal([]byte(data), &rep); err != nil {
		return dnscheck.Report{}, false, fmt.Errorf("store: decode DNS snapshot: %w", err)
	}
	return rep, true, nil
}

func rrsetJSON(r *dnscheck.RRset) (sql.NullString, error) {
	if r == nil {
		return sql.NullString{}, nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return sql.NullString{}, fmt.Errorf("store: encode RRset: %w", err)
	}
	return sql.NullString{String: string(b), Valid: true}, nil
}

func rrsetFrom(s sql.NullString) (*dnscheck.RRset, error) {
	if !s.Valid {
		return nil, nil
	}
	var r dnscheck.RRset
	if err := json.Unmarshal([]byte(s.String), &r); err != nil {
		return nil, fmt.Errorf("store: decode RRset: %w", err)
	}
	return &r, nil
}
