// Package evidence writes postmortem evidence bundles: for a set of
// attempts (given by ID, by route and time, or by incident) one zip or
// directory with a summary, a timeline of everything that happened
// (attempts, DNS changes, route transitions, alerts, notifications), every
// attempt's record, transcript, header block and the DNS as it was at its
// submission, a self-contained report.html and a SHA-256 manifest. Every
// file goes through the same redaction: no configured secret leaves.
package evidence

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/reports/attempts"
	"github.com/otpprobe/otpprobe/reports/incidents"
	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
	"github.com/otpprobe/otpprobe/verify/dnscheck"
)

// Reader is what a bundle is read from (store.SQLite).
type Reader interface {
	attempts.Source
	incidents.Reader
	DNSSnapshotAt(ctx context.Context, domain string, t time.Time) (dnscheck.Report, bool, error)
	DNSChangesBetween(ctx context.Context, domains []string, from, to time.Time) ([]store.DNSChange, error)
	NotificationsBetween(ctx context.Context, from, to time.Time) ([]store.Notification, error)
}

var _ Reader = (*store.SQLite)(nil)

// Selection says which attempts a bundle is about: IDs, or a route's
// senders (or one sender) between Since and Until, or an incident.
type Selection struct {
	IDs          []string
	Route        string
	Sender       string
	Since, Until time.Time
	Incident     int64
}

// MaxAttempts bounds a bundle; a wider selection is refused rather than
// cut silently.
const MaxAttempts = 2000

// dnsMargin is how far around the attempts DNS changes are looked for: a
// zone edit usually comes before the first failure.
const dnsMargin = time.Hour

// ErrEmpty means the selection matched no attempt.
var ErrEmpty = errors.New("the selection matches no stored attempt")

// Bundle is the evidence gathered for one selection, ready to write.
type Bundle struct {
	Summary   Summary
	Timeline  []Event
	Attempts  []*attempt.Attempt
	DNS       map[string]AttemptDNS // by attempt ID
	Incident  *incidents.JSON
	generated time.Time
	redact    *Redactor
}

// AttemptDNS is the DNS as it was when an attempt was submitted: the
// snapshot current then, and the changes detected around it.
type AttemptDNS struct {
	Domain   string             `json:"domain"`
	Snapshot *dnscheck.Report   `json:"snapshot"` // null when none was stored
	Changes  []store.DNSChange  `json:"changes"`
	Findings []dnscheck.Finding `json:"-"`
}

// Build gathers the evidence for sel.
func Build(ctx context.Context, r Reader, cfg *targets.Config, sel Selection, now time.Time) (*Bundle, error) {
	b := &Bundle{DNS: map[string]AttemptDNS{}, generated: now.UTC(), redact: NewRedactor(cfg)}
	as, err := b.selectAttempts(ctx, r, cfg, &sel, now)
	if err != nil {
		return nil, err
	}
	if len(as) == 0 {
		return nil, ErrEmpty
	}
	slices.SortFunc(as, func(x, y *attempt.Attempt) int {
		return cmp.Or(x.CreatedAt.Compare(y.CreatedAt), cmp.Compare(x.ID, y.ID))
	})
	b.Attempts = as
	from, to := as[0].CreatedAt, as[len(as)-1].CreatedAt.Add(time.Millisecond)
	for _, a := range as {
		to = laterOf(to, a.SeenAt.Add(time.Millisecond), a.Deadline)
	}
	if !sel.Since.IsZero() {
		from = sel.Since
	}
	if !sel.Until.IsZero() {
		to = sel.Until
	}
	if b.Incident != nil {
		from, to = b.Incident.Window[0], laterOf(b.Incident.Window[1], to)
	}
	if to.After(now) {
		to = now
	}
	domains := senderDomains(cfg, as)
	for _, a := range as {
		d, err := attemptDNS(ctx, r, domains[a.Sender], a)
		if err != nil {
			return nil, err
		}
		b.DNS[a.ID] = d
	}
	if err := b.timeline(ctx, r, cfg, as, domains, from, to); err != nil {
		return nil, err
	}
	b.Summary = summarize(b, sel, from, to)
	return b, nil
}

func laterOf(t time.Time, ts ...time.Time) time.Time {
	for _, u := range ts {
		if u.After(t) {
			t = u
		}
	}
	return t
}

func (b *Bundle) selectAttempts(ctx context.Context, r Reader, cfg *targets.Config, sel *Selection, now time.Time) ([]*attempt.Attempt, error) {
	switch {
	case len(sel.IDs) > 0:
		if len(sel.IDs) > MaxAttempts {
			return nil, fmt.Errorf("%d attempt IDs: at most %d per bundle", len(sel.IDs), MaxAttempts)
		}
		var out []*attempt.Attempt
		for _, id := range sel.IDs {
			a, err := r.Get(ctx, id)
			if err != nil {
				return nil, err
			}
			out = append(out, a)
		}
		return out, nil
	case sel.Incident > 0:
		j, err := incidents.Get(ctx, r, sel.Incident, now)
		if err != nil {
			return nil, err
		}
		b.Incident = &j
		return readAll(ctx, r, store.AttemptQuery{Probe: j.Probe, Sender: j.Sender, Since: j.Window[0], Until: j.Window[1]})
	case sel.Route != "" || sel.Sender != "":
		if sel.Since.IsZero() {
			return nil, errors.New("since: a route or sender bundle needs a start time")
		}
		until := sel.Until
		if until.IsZero() {
			until = now
		}
		senders := []string{sel.Sender}
		if sel.Route != "" {
			rt, ok := cfg.Route(sel.Route)
			if !ok {
				return nil, fmt.Errorf("route: unknown route %q", sel.Route)
			}
			senders = rt.Senders()
		}
		var out []*attempt.Attempt
		for _, s := range senders {
			as, err := readAll(ctx, r, store.AttemptQuery{Sender: s, Since: sel.Since, Until: until})
			if err != nil {
				return nil, err
			}
			out = append(out, as...)
		}
		if len(out) > MaxAttempts {
			return nil, fmt.Errorf("%d attempts: at most %d per bundle; narrow --since/--until", len(out), MaxAttempts)
		}
		return out, nil
	}
	return nil, errors.New("select attempts by ID, by route (or sender) and time, or by incident")
}

// readAll pages through q up to MaxAttempts.
func readAll(ctx context.Context, r Reader, q store.AttemptQuery) ([]*attempt.Attempt, error) {
	q.Limit = store.MaxPageLimit
	var out []*attempt.Attempt
	for {
		p, err := r.Attempts(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Attempts...)
		if len(out) > MaxAttempts {
			return nil, fmt.Errorf("more than %d attempts: narrow the selection", MaxAttempts)
		}
		if p.Next == "" {
			return out, nil
		}
		q.Cursor = p.Next
	}
}

// senderDomains maps each sender of as to its From domain.
func senderDomains(cfg *targets.Config, as []*attempt.Attempt) map[string]string {
	out := map[string]string{}
	for _, s := range cfg.Senders {
		out[s.Name] = s.Domain()
	}
	return out
}

func attemptDNS(ctx context.Context, r Reader, domain string, a *attempt.Attempt) (AttemptDNS, error) {
	d := AttemptDNS{Domain: domain, Changes: []store.DNSChange{}}
	if domain == "" {
		return d, nil
	}
	at := a.SubmittedAt
	if at.IsZero() {
		at = a.CreatedAt
	}
	rep, ok, err := r.DNSSnapshotAt(ctx, domain, at)
	if err != nil {
		return d, err
	}
	if ok {
		d.Snapshot = &rep
		d.Findings = rep.Findings
	}
	cs, err := r.DNSChangesBetween(ctx, []string{domain}, at.Add(-dnsMargin), at.Add(dnsMargin))
	if err != nil {
		return d, err
	}
	if cs != nil {
		d.Changes = cs
	}
	return d, nil
}
