package evidence

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/otpprobe/otpprobe/reports/attempts"
	"github.com/otpprobe/otpprobe/targets"
)

// Builder builds bundles from one store for one config (the API's
// source).
type Builder struct {
	Reader Reader
	Config *targets.Config
	Now    func() time.Time // default time.Now
}

// Bundle builds the bundle of sel.
func (b Builder) Bundle(ctx context.Context, sel Selection) (*Bundle, error) {
	now := time.Now
	if b.Now != nil {
		now = b.Now
	}
	return Build(ctx, b.Reader, b.Config, sel, now())
}

// ParseSelection reads a selection from URL parameters (the API's) or CLI
// flags in the same form: id (repeated), or route or sender with since
// and until, or incident. Errors name the parameter.
func ParseSelection(v url.Values, now time.Time) (Selection, error) {
	var sel Selection
	for k := range v {
		switch k {
		case "id", "route", "sender", "since", "until", "incident":
		default:
			return sel, fmt.Errorf("unknown parameter %q (known: id, route, sender, since, until, incident)", k)
		}
	}
	sel.IDs = v["id"]
	sel.Route, sel.Sender = v.Get("route"), v.Get("sender")
	var err error
	if sel.Since, err = attempts.ParseTime(v.Get("since"), now); err != nil {
		return sel, fmt.Errorf("since: %w", err)
	}
	if sel.Until, err = attempts.ParseTime(v.Get("until"), now); err != nil {
		return sel, fmt.Errorf("until: %w", err)
	}
	if s := v.Get("incident"); s != "" {
		if sel.Incident, err = strconv.ParseInt(s, 10, 64); err != nil || sel.Incident < 1 {
			return sel, fmt.Errorf("incident: want an incident number, got %q", s)
		}
	}
	kinds := 0
	if len(sel.IDs) > 0 {
		kinds++
	}
	if sel.Route != "" || sel.Sender != "" {
		kinds++
		if sel.Since.IsZero() {
			return sel, fmt.Errorf("since: required with route or sender")
		}
	}
	if sel.Incident > 0 {
		kinds++
	}
	if kinds != 1 {
		return sel, fmt.Errorf("give exactly one of: attempt IDs, route (or sender) with since/until, incident")
	}
	return sel, nil
}
