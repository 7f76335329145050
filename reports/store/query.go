package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
)

// Page sizes of Attempts: a request without a limit gets DefaultPageLimit,
// and none gets more than MaxPageLimit (an API client cannot make one
// query read the whole history).
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 500
)

// AttemptQuery selects one page of attempts, newest first. The API, the
// CLI, the dashboard and evidence bundles all read attempts through it.
type AttemptQuery struct {
	Agent, Probe, Sender, Mailbox string
	Provider                      string
	Outcome                       attempt.Outcome
	Since, Until                  time.Time // CreatedAt in [Since, Until); zero: open
	// Cursor continues after the last attempt of a previous page (its
	// AttemptPage.Next); "" starts at the newest.
	Cursor string
	Limit  int // 0: DefaultPageLimit; above MaxPageLimit: MaxPageLimit
}

// AttemptPage is one page of attempts, newest first; Next is the cursor
// of the page after it, "" when this is the last.
type AttemptPage struct {
	Attempts []*attempt.Attempt
	Next     string
}

// ErrBadCursor means a cursor was not one this store handed out.
var ErrBadCursor = errors.New("invalid cursor")

// cursor is a position in the (created_at, id) order.
type cursor struct {
	createdAt int64
	id        string
}

func (c cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.createdAt, 10) + ":" + c.id))
}

func parseCursor(s string) (cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, ErrBadCursor
	}
	ms, id, ok := strings.Cut(string(b), ":")
	if !ok || id == "" {
		return cursor{}, ErrBadCursor
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return cursor{}, ErrBadCursor
	}
	return cursor{n, id}, nil
}

// PageLimit is the number of attempts a query with limit n returns.
func PageLimit(n int) int {
	switch {
	case n <= 0:
		return DefaultPageLimit
	case n > MaxPageLimit:
		return MaxPageLimit
	}
	return n
}

// pageQuery builds the SELECT of one page (one row more than the limit,
// to know whether there is a next page); ph(n) is the n-th placeholder.
// Keyset pagination on (created_at, id): a page costs the same however
// deep it is, and attempts stored meanwhile never shift it.
func pageQuery(q AttemptQuery, ph func(n int) string) (string, []any, int, error) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return ph(len(args))
	}
	if !q.Since.IsZero() {
		where = append(where, "created_at >= "+arg(q.Since.UnixMilli()))
	}
	if !q.Until.IsZero() {
		where = append(where, "created_at < "+arg(q.Until.UnixMilli()))
	}
	for _, f := range []struct{ col, val string }{
		{"agent", q.Agent}, {"probe", q.Probe}, {"sender", q.Sender}, {"mailbox", q.Mailbox}, {"provider", q.Provider}, {"outcome", string(q.Outcome)},
	} {
		if f.val != "" {
			where = append(where, f.col+" = "+arg(f.val))
		}
	}
	if q.Cursor != "" {
		c, err := parseCursor(q.Cursor)
		if err != nil {
			return "", nil, 0, err
		}
		ms := arg(c.createdAt)
		where = append(where, "(created_at < "+ms+" OR (created_at = "+arg(c.createdAt)+" AND id < "+arg(c.id)+"))")
	}
	limit := PageLimit(q.Limit)
	s := `SELECT ` + columns + ` FROM attempts`
	if len(where) > 0 {
		s += ` WHERE ` + strings.Join(where, " AND ")
	}
	s += ` ORDER BY created_at DESC, id DESC LIMIT ` + arg(limit+1)
	return s, args, limit, nil
}

// page cuts the extra row off and sets Next.
func page(as []*attempt.Attempt, limit int) AttemptPage {
	if len(as) <= limit {
		return AttemptPage{Attempts: as}
	}
	as = as[:limit]
	last := as[limit-1]
	return AttemptPage{Attempts: as, Next: cursor{last.CreatedAt.UnixMilli(), last.ID}.String()}
}

// Attempts returns one page of the attempts matching q, newest first.
func (s *SQLite) Attempts(ctx context.Context, q AttemptQuery) (AttemptPage, error) {
	sq, args, limit, err := pageQuery(q, func(int) string { return "?" })
	if err != nil {
		return AttemptPage{}, fmt.Errorf("store: query attempts: %w", err)
	}
	as, err := s.query(ctx, "query", sq, args...)
	if err != nil {
		return AttemptPage{}, err
	}
	return page(as, limit), nil
}

// LatencySample is one delivered attempt's latency, for percentiles.
type LatencySample struct {
	CreatedAt time.Time
	Sender    string
	Provider  string // the provider, or the mailbox for generic ones
	Latency   time.Duration
}

// latencyQuery reads only what percentiles need, from the created_at index.
const latencyQuery = `SELECT created_at, sender, provider, mailbox, seen_at - submitted_at FROM attempts
	WHERE created_at >= %s AND seen_at IS NOT NULL AND submitted_at IS NOT NULL
	ORDER BY created_at DESC LIMIT %s`

// LatencySamples returns the latencies of attempts created since since,
// newest first, at most limit.
func (s *SQLite) LatencySamples(ctx context.Context, since time.Time, limit int) ([]LatencySample, error) {
	rows, err := s.r.QueryContext(ctx, fmt.Sprintf(latencyQuery, "?", "?"), since.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("store: latency samples: %w", err)
	}
	defer rows.Close()
	var out []LatencySample
	for rows.Next() {
		var (
			l                         LatencySample
			created, ms               int64
			provider, mailbox, sender string
		)
		if err := rows.Scan(&created, &sender, &provider, &mailbox, &ms); err != nil {
			return nil, fmt.Errorf("store: latency samples: %w", err)
		}
		if provider == "" || provider == "generic" {
			provider = mailbox
		}
		l.CreatedAt, l.Sender, l.Provider, l.Latency = time.UnixMilli(created).UTC(), sender, provider, time.Duration(ms)*time.Millisecond
		out = append(out, l)
	}
	return out, rows.Err()
}
