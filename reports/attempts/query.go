// Package attempts is the read side of the attempt history: the query a
// person or a program asks (parsed the same way from the API's URL and the
// CLI's flags), and the public JSON of one attempt with everything stored.
// The API, the CLI, the dashboard and evidence bundles all go through it.
package attempts

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/reports/store"
)

// Source is where attempts are read (store.SQLite, store.Postgres).
type Source interface {
	Attempts(ctx context.Context, q store.AttemptQuery) (store.AttemptPage, error)
	Get(ctx context.Context, id string) (*attempt.Attempt, error)
}

var (
	_ Source = (*store.SQLite)(nil)
	_ Source = (*store.Postgres)(nil)
)

// Params are the query's parameter names, in the API and as CLI flags.
var Params = []string{"agent", "probe", "sender", "mailbox", "provider", "outcome", "since", "until", "limit", "cursor"}

// ParseQuery reads a query from URL parameters (or flags put in the same
// form). since and until are RFC 3339 times or a duration back from now
// ("90m", "24h", "7d"). Errors name the parameter.
func ParseQuery(v url.Values, now time.Time) (store.AttemptQuery, error) {
	for k := range v {
		if !slices.Contains(Params, k) {
			return store.AttemptQuery{}, fmt.Errorf("unknown parameter %q (known: %s)", k, strings.Join(Params, ", "))
		}
	}
	q := store.AttemptQuery{
		Agent: v.Get("agent"), Probe: v.Get("probe"), Sender: v.Get("sender"), Mailbox: v.Get("mailbox"), Provider: v.Get("provider"),
		Cursor: v.Get("cursor"),
	}
	if o := v.Get("outcome"); o != "" {
		q.Outcome = attempt.Outcome(o)
		if !slices.Contains(attempt.Outcomes, q.Outcome) && q.Outcome != attempt.OutcomePending {
			return q, fmt.Errorf("outcome: %q is not one of %s", o, outcomeNames())
		}
	}
	var err error
	if q.Since, err = ParseTime(v.Get("since"), now); err != nil {
		return q, fmt.Errorf("since: %w", err)
	}
	if q.Until, err = ParseTime(v.Get("until"), now); err != nil {
		return q, fmt.Errorf("until: %w", err)
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since) {
		return q, fmt.Errorf("until: %s is not after since %s", q.Until.Format(time.RFC3339), q.Since.Format(time.RFC3339))
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > store.MaxPageLimit {
			return q, fmt.Errorf("limit: want a number from 1 to %d, got %q", store.MaxPageLimit, l)
		}
		q.Limit = n
	}
	return q, nil
}

func outcomeNames() string {
	names := []string{string(attempt.OutcomePending)}
	for _, o := range attempt.Outcomes {
		names = append(names, string(o))
	}
	return strings.Join(names, ", ")
}

// ParseTime reads an RFC 3339 time (or a date, 2006-01-02, meaning its
// midnight UTC) or a duration back from now ("15m", "2h", "7d"); "" is the
// zero time.
func ParseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t.UTC(), nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(d); err == nil && n >= 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour).UTC(), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration back from now (e.g. 2h, 7d)", s)
}
