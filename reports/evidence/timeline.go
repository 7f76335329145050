package evidence

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
	"github.com/otpprobe/otpprobe/verify/dnscheck"
)

// Event kinds of the timeline.
const (
	KindAttempt      = "attempt"
	KindDNSChange    = "dns_change"
	KindTransition   = "route_transition"
	KindAlertFiring  = "alert_firing"
	KindAlertResolve = "alert_resolved"
	KindNotification = "notification"
	KindIncident     = "incident"
)

// Event is one line of the timeline.
type Event struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Summary string    `json:"summary"`
	Attempt string    `json:"attempt,omitempty"` // the attempt's ID, for attempt events
	Bad     bool      `json:"bad"`               // an unhealthy attempt, a failure, a firing alert
}

func (b *Bundle) timeline(ctx context.Context, r Reader, cfg *targets.Config, as []*attempt.Attempt, domains map[string]string,
	from, to time.Time) error {
	var ev []Event
	for _, a := range as {
		ev = append(ev, Event{At: a.CreatedAt, Kind: KindAttempt, Attempt: a.ID, Bad: !healthy(a),
			Summary: fmt.Sprintf("%s → %s (%s): %s%s", a.Sender, a.Mailbox, a.ProviderKey(), outcomeText(a), diagSuffix(a))})
	}
	var ds []string
	for _, a := range as {
		if d := domains[a.Sender]; d != "" && !slices.Contains(ds, d) {
			ds = append(ds, d)
		}
	}
	if len(ds) > 0 {
		cs, err := r.DNSChangesBetween(ctx, ds, from.Add(-dnsMargin), to)
		if err != nil {
			return err
		}
		for _, c := range cs {
			ev = append(ev, Event{At: c.DetectedAt, Kind: KindDNSChange, Bad: true,
				Summary: fmt.Sprintf("%s %s changed (against the %s %s): %s → %s", c.Name, c.Type, c.Against, againstWord(c.Against),
					rrText(c.Before), rrText(c.After))})
		}
	}
	routes := routesOf(cfg, as)
	trs, err := r.TransitionsBetween(ctx, routes, from, to)
	if err != nil {
		return err
	}
	for _, t := range trs {
		ev = append(ev, Event{At: t.At, Kind: KindTransition, Bad: t.ToSender != t.FromSender || t.ToState != "primary",
			Summary: fmt.Sprintf("route %s: %s (%s) → %s (%s): %s%s", t.Route, t.FromState, t.FromSender, t.ToState, t.ToSender, t.Reason, takenBy(t))})
	}
	als, err := r.AlertsBetween(ctx, from, to)
	if err != nil {
		return err
	}
	senders := sendersOf(as)
	for _, a := range als {
		if s, ok := a.Labels["sender"]; ok && !slices.Contains(senders, s) {
			continue
		}
		if rt, ok := a.Labels["route"]; ok && !slices.Contains(routes, rt) {
			continue
		}
		ev = append(ev, Event{At: a.StartsAt, Kind: KindAlertFiring, Bad: true, Summary: a.Name + ": " + a.Annotations["summary"]})
		if !a.EndsAt.IsZero() && a.EndsAt.Before(to) {
			ev = append(ev, Event{At: a.EndsAt, Kind: KindAlertResolve, Summary: a.Name + " resolved"})
		}
	}
	ns, err := r.NotificationsBetween(ctx, from, to)
	if err != nil {
		return err
	}
	for _, n := range ns {
		state := "delivered " + n.DeliveredAt.Format("15:04:05.000")
		if n.DeliveredAt.IsZero() {
			state = fmt.Sprintf("not delivered after %d tries", n.Tries)
			if n.LastError != "" {
				state += ": " + n.LastError
			}
		}
		ev = append(ev, Event{At: n.CreatedAt, Kind: KindNotification, Summary: fmt.Sprintf("%s notification to %s, %s", n.Kind, n.Notifier, state)})
	}
	if j := b.Incident; j != nil {
		ev = append(ev, Event{At: j.StartedAt, Kind: KindIncident, Bad: true, Summary: fmt.Sprintf("incident %d opened: %s unhealthy", j.ID, j.Sender)})
		if j.EndedAt != nil {
			ev = append(ev, Event{At: *j.EndedAt, Kind: KindIncident, Summary: fmt.Sprintf("incident %d resolved: %s healthy again", j.ID, j.Sender)})
		}
	}
	// Same time: the cause (a DNS change) before what it caused.
	order := map[string]int{KindDNSChange: 0, KindIncident: 1, KindAttempt: 2, KindTransition: 3, KindAlertFiring: 4, KindAlertResolve: 5, KindNotification: 6}
	slices.SortStableFunc(ev, func(x, y Event) int { return cmp.Or(x.At.Compare(y.At), cmp.Compare(order[x.Kind], order[y.Kind])) })
	b.Timeline = ev
	return nil
}

func againstWord(against string) string {
	if against == store.AgainstBaseline {
		return "pinned records"
	}
	return "check"
}

func healthy(a *attempt.Attempt) bool { return a.Outcome == attempt.OutcomeInbox && !a.Late }

func outcomeText(a *attempt.Attempt) string {
	s := string(a.Outcome)
	if a.Late {
		s += " (late)"
	}
	if l := a.Latency(); l > 0 {
		s += fmt.Sprintf(" in %s", l.Round(time.Millisecond))
	}
	if v := a.Verdicts; v.SPF != "" || v.DKIM != "" || v.DMARC != "" {
		s += fmt.Sprintf(", spf=%s dkim=%s dmarc=%s", orDash(v.SPF), orDash(v.DKIM), orDash(v.DMARC))
	}
	return s
}

func diagSuffix(a *attempt.Attempt) string {
	if a.Diagnosis == "" {
		return ""
	}
	return " — " + a.Diagnosis
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func rrText(r *dnscheck.RRset) string {
	switch {
	case r == nil:
		return "(not read)"
	case len(r.Data) == 0:
		return r.Rcode
	}
	return strings.Join(r.Data, " | ")
}

func routesOf(cfg *targets.Config, as []*attempt.Attempt) []string {
	senders := sendersOf(as)
	var out []string
	for _, r := range cfg.Routes {
		for _, s := range r.Senders() {
			if slices.Contains(senders, s) && !slices.Contains(out, r.Name) {
				out = append(out, r.Name)
			}
		}
	}
	return out
}

func sendersOf(as []*attempt.Attempt) []string {
	var out []string
	for _, a := range as {
		if !slices.Contains(out, a.Sender) {
			out = append(out, a.Sender)
		}
	}
	slices.Sort(out)
	return out
}

// timelineText is timeline.txt: one line per event.
func timelineText(ev []Event) string {
	var b strings.Builder
	for _, e := range ev {
		mark := " "
		if e.Bad {
			mark = "!"
		}
		fmt.Fprintf(&b, "%s %s %-16s %s\n", e.At.UTC().Format("2006-01-02 15:04:05.000Z"), mark, e.Kind, e.Summary)
	}
	return b.String()
}

// takenBy says who took a transition: the API token's name and source
// address of a pin or unpin, and the agent that decided.
func takenBy(t store.RouteTransition) string {
	var parts []string
	if t.Actor != "" {
		parts = append(parts, "by "+t.Actor)
	}
	if t.Source != "" {
		parts = append(parts, "from "+t.Source)
	}
	if t.Agent != "" {
		parts = append(parts, "agent "+t.Agent)
	}
	if len(parts) == 0 {
		return ""
	}
	return " [" + strings.Join(parts, " ") + "]"
}
