package dashboard

import (
	"context"
	"fmt"
	"html/template"
	"slices"
	"strings"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/reports/attempts"
	"github.com/otpprobe/otpprobe/reports/failover"
	"github.com/otpprobe/otpprobe/reports/incidents"
	"github.com/otpprobe/otpprobe/reports/slo"
	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/verify/dnscheck"
)

// What the page shows, and how far back.
const (
	lastN          = 10             // outcomes per matrix cell
	matrixWindow   = 24 * time.Hour // attempts the matrix looks at
	matrixRead     = 500            // at most this many of them
	latencyWindow  = time.Hour
	latencyBuckets = 12
	latencyRead    = 20000
	changesWindow  = 7 * 24 * time.Hour
	incidentsShown = 10
)

type view struct {
	Now         time.Time
	RefreshMS   int64
	Routes      []failover.Decision
	Providers   []string
	Matrix      []matrixRow
	Charts      []chart
	SLOs        []slo.Status
	DNS         []dnsView
	Changes     []store.DNSChange
	Incidents   []incidents.JSON
	Problems    []string // parts that could not be read
	HasAttempts bool
}

type matrixRow struct {
	Sender string
	Active bool // the active sender of some route
	Cells  []cell
}

type cell struct {
	Provider string
	Dots     []dot // newest first
}

type dot struct {
	ID, Outcome, Title string
	Late               bool
}

type dnsView struct {
	Domain    string
	CheckedAt time.Time
	Findings  []dnscheck.Finding // warnings and worse
}

func (d *Dashboard) view(ctx context.Context) (*view, error) {
	now := d.o.Now().UTC()
	v := &view{Now: now, RefreshMS: d.o.Refresh.Milliseconds()}
	if d.o.Routes != nil {
		v.Routes = d.o.Routes.Decisions()
	}
	senders, providers := d.names()
	v.Providers = providers

	page, err := d.o.History.Attempts(ctx, store.AttemptQuery{Since: now.Add(-matrixWindow), Limit: matrixRead})
	if err != nil {
		return nil, err
	}
	v.HasAttempts = len(page.Attempts) > 0
	v.Matrix = matrix(senders, providers, page.Attempts, v.Routes)

	samples, err := d.o.History.LatencySamples(ctx, now.Add(-latencyWindow), latencyRead)
	if err != nil {
		return nil, err
	}
	v.Charts = charts(senders, providers, samples, now)

	if d.o.SLOs != nil {
		if v.SLOs, err = d.o.SLOs.Evaluate(ctx); err != nil {
			v.Problems = append(v.Problems, "SLOs could not be evaluated")
		}
	}
	var domains []string
	for _, s := range d.o.Config.Senders {
		if dom := strings.ToLower(s.Domain()); dom != "" && !slices.Contains(domains, dom) {
			domains = append(domains, dom)
		}
	}
	for _, dom := range domains {
		rep, ok, err := d.o.History.LatestDNSSnapshot(ctx, dom)
		if err != nil {
			return nil, err
		}
		dv := dnsView{Domain: dom}
		if ok {
			dv.CheckedAt = rep.CheckedAt
			for _, f := range rep.Findings {
				if f.Severity >= dnscheck.SeverityWarning {
					dv.Findings = append(dv.Findings, f)
				}
			}
		}
		v.DNS = append(v.DNS, dv)
	}
	if v.Changes, err = d.o.History.DNSChangesBetween(ctx, domains, now.Add(-changesWindow), now.Add(time.Second)); err != nil {
		return nil, err
	}
	slices.Reverse(v.Changes) // newest first
	if len(v.Changes) > 20 {
		v.Changes = v.Changes[:20]
	}
	if v.Incidents, err = incidents.List(ctx, d.o.History, store.IncidentQuery{Since: now.Add(-changesWindow), Limit: incidentsShown}, now); err != nil {
		return nil, err
	}
	return v, nil
}

// names are the senders and the providers probes reach, in config order.
func (d *Dashboard) names() (senders, providers []string) {
	for _, s := range d.o.Config.Senders {
		senders = append(senders, s.Name)
	}
	probed := map[string]bool{} // a bounce mailbox is not probed
	for _, p := range d.o.Config.Probes {
		for _, m := range p.Mailboxes {
			probed[m] = true
		}
	}
	for _, m := range d.o.Config.Mailboxes {
		if !probed[m.Name] {
			continue
		}
		a := attempt.Attempt{Provider: m.Provider, Mailbox: m.Name}
		if p := a.ProviderKey(); !slices.Contains(providers, p) {
			providers = append(providers, p)
		}
	}
	return senders, providers
}

func matrix(senders, providers []string, as []*attempt.Attempt, routes []failover.Decision) []matrixRow {
	cells := map[[2]string][]dot{}
	for _, a := range as { // newest first
		k := [2]string{a.Sender, a.ProviderKey()}
		if len(cells[k]) >= lastN {
			continue
		}
		title := fmt.Sprintf("%s %s → %s: %s", a.CreatedAt.UTC().Format("15:04:05"), a.Sender, a.Mailbox, attempts.OutcomeText(a))
		if l := a.Latency(); l > 0 {
			title += " in " + l.Round(time.Millisecond).String()
		}
		cells[k] = append(cells[k], dot{ID: a.ID, Outcome: string(a.Outcome), Late: a.Late, Title: title})
	}
	var rows []matrixRow
	for _, s := range senders {
		row := matrixRow{Sender: s}
		for _, r := range routes {
			row.Active = row.Active || r.ActiveSender == s
		}
		for _, p := range providers {
			row.Cells = append(row.Cells, cell{Provider: p, Dots: cells[[2]string{s, p}]})
		}
		rows = append(rows, row)
	}
	return rows
}

// attemptView is the attempt page.
type attemptView struct {
	A        *attempt.Attempt
	D        attempts.Detail
	Domain   string
	Snapshot *dnscheck.Report
	Changes  []store.DNSChange
}

func (d *Dashboard) attemptView(ctx context.Context, a *attempt.Attempt) (*attemptView, error) {
	v := &attemptView{A: a, D: attempts.DetailOf(a)}
	for _, s := range d.o.Config.Senders {
		if s.Name == a.Sender {
			v.Domain = strings.ToLower(s.Domain())
		}
	}
	if v.Domain == "" {
		return v, nil
	}
	at := a.SubmittedAt
	if at.IsZero() {
		at = a.CreatedAt
	}
	rep, ok, err := d.o.History.DNSSnapshotAt(ctx, v.Domain, at)
	if err != nil {
		return nil, err
	}
	if ok {
		v.Snapshot = &rep
	}
	if v.Changes, err = d.o.History.DNSChangesBetween(ctx, []string{v.Domain}, at.Add(-time.Hour), at.Add(time.Hour)); err != nil {
		return nil, err
	}
	return v, nil
}

var funcs = template.FuncMap{
	"clock": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("15:04:05")
	},
	"stamp": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"div": func(a, b int64) int64 { return a / b },
	"pct": func(f float64) string { return fmt.Sprintf("%.2f%%", f*100) },
	"num": func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"ms": func(ms int64) string {
		if ms == 0 {
			return "—"
		}
		return (time.Duration(ms) * time.Millisecond).String()
	},
	"dur":      func(s int64) string { return (time.Duration(s) * time.Second).String() },
	"outcome":  attempts.OutcomeText,
	"verdicts": attempts.VerdictText,
	"rr": func(r *dnscheck.RRset) string {
		switch {
		case r == nil:
			return "(none)"
		case len(r.Data) == 0:
			return r.Rcode
		}
		return strings.Join(r.Data, " | ")
	},
	"budgetClass": func(f float64) string {
		switch {
		case f < 0:
			return "bad"
		case f < 0.25:
			return "warn"
		}
		return "ok"
	},
	"burnOrder": func(m map[string]float64) []burn {
		var out []burn
		for _, w := range []string{"5m", "30m", "1h", "6h", "3d"} {
			if r, ok := m[w]; ok {
				out = append(out, burn{w, r})
			}
		}
		return out
	},
	"stateClass": func(state string) string {
		if state == "primary" {
			return "ok"
		}
		return "bad"
	},
}

type burn struct {
	Window string
	Rate   float64
}
