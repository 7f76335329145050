package targets

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Retention says how long the store keeps each kind of history
// (store.retention): a Go duration ("720h"), days ("30d") or "forever".
// Defaults: attempts 30 days, DNS snapshots and changes 90 days, route
// transitions and incidents 1 year. Attempts an alert, a transition or a
// kept incident refers to stay with it.
type Retention struct {
	Attempts string `yaml:"attempts"`
	DNS      string `yaml:"dns"`
	History  string `yaml:"history"` // route transitions and incidents

	attempts, dns, history time.Duration // parsed at validation; 0: forever
}

// Retention defaults.
const (
	DefaultRetainAttempts = "30d"
	DefaultRetainDNS      = "90d"
	DefaultRetainHistory  = "365d"
)

// KeepAttempts, KeepDNS and KeepHistory are the periods; 0 keeps forever.
func (r Retention) KeepAttempts() time.Duration { return r.attempts }
func (r Retention) KeepDNS() time.Duration      { return r.dns }
func (r Retention) KeepHistory() time.Duration  { return r.history }

func (r *Retention) fillDefaults() {
	fill(&r.Attempts, DefaultRetainAttempts)
	fill(&r.DNS, DefaultRetainDNS)
	fill(&r.History, DefaultRetainHistory)
}

func (r *Retention) check() error {
	for _, f := range []struct {
		name string
		s    string
		d    *time.Duration
	}{{"attempts", r.Attempts, &r.attempts}, {"dns", r.DNS, &r.dns}, {"history", r.History, &r.history}} {
		d, err := parseAge(f.s)
		if err != nil {
			return errorf("store.retention."+f.name, "%v", err)
		}
		*f.d = d
	}
	return nil
}

// parseAge reads "30d", "720h" or "forever" (0).
func parseAge(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "forever" {
		return 0, nil
	}
	bad := fmt.Errorf("want days (30d), a duration (720h) or forever, got %q", s)
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 {
			return 0, bad
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, bad
	}
	return d, nil
}

// Cleanup is the top-level cleanup section: purge_after is how long our
// own canaries may stay in a seed mailbox's Trash before the prober
// removes them (days, a duration, or forever; default 7d).
type Cleanup struct {
	PurgeAfter string `yaml:"purge_after"`

	purgeAfter time.Duration
}

// DefaultPurgeAfter is cleanup.purge_after's default.
const DefaultPurgeAfter = "7d"

// PurgeAfterDuration is purge_after; 0 never purges.
func (c Cleanup) PurgeAfterDuration() time.Duration { return c.purgeAfter }

func (c *Cleanup) check() error {
	d, err := parseAge(c.PurgeAfter)
	if err != nil {
		return errorf("cleanup.purge_after", "%v", err)
	}
	c.purgeAfter = d
	return nil
}
