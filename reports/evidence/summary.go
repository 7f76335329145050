package evidence

import (
	"cmp"
	"slices"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/reports/incidents"
	"github.com/otpprobe/otpprobe/verify/dnscheck"
)

// Summary is summary.json: what happened, when, to whom, and why.
type Summary struct {
	GeneratedAt time.Time          `json:"generated_at"`
	Selection   SelectionJSON      `json:"selection"`
	From        time.Time          `json:"from"`
	To          time.Time          `json:"to"`
	Attempts    int                `json:"attempts"`
	Senders     []string           `json:"senders"`
	Providers   []string           `json:"providers"`
	Outcomes    map[string]int     `json:"outcomes"`
	Late        int                `json:"late"`
	FirstFailed *time.Time         `json:"first_failed_at"`
	Diagnoses   []Count            `json:"diagnoses"`
	DNSFindings []dnscheck.Finding `json:"dns_findings"` // error and critical, at the failed attempts' submissions
	DNSChanges  int                `json:"dns_changes"`
	Transitions []string           `json:"route_transitions"`
	Incident    *incidents.JSON    `json:"incident,omitempty"`
}

// SelectionJSON records what the bundle was asked for.
type SelectionJSON struct {
	IDs      []string   `json:"ids,omitempty"`
	Route    string     `json:"route,omitempty"`
	Sender   string     `json:"sender,omitempty"`
	Since    *time.Time `json:"since,omitempty"`
	Until    *time.Time `json:"until,omitempty"`
	Incident int64      `json:"incident,omitempty"`
}

// Count is a distinct text and how often it was seen.
type Count struct {
	Text  string `json:"text"`
	Count int    `json:"count"`
}

func summarize(b *Bundle, sel Selection, from, to time.Time) Summary {
	s := Summary{GeneratedAt: b.generated, From: from.UTC(), To: to.UTC(), Attempts: len(b.Attempts),
		Senders: sendersOf(b.Attempts), Providers: []string{}, Outcomes: map[string]int{}, Diagnoses: []Count{},
		DNSFindings: []dnscheck.Finding{}, Transitions: []string{}, Incident: b.Incident,
		Selection: SelectionJSON{IDs: sel.IDs, Route: sel.Route, Sender: sel.Sender, Incident: sel.Incident}}
	if !sel.Since.IsZero() {
		s.Selection.Since = &sel.Since
	}
	if !sel.Until.IsZero() {
		s.Selection.Until = &sel.Until
	}
	for _, o := range attempt.Outcomes {
		s.Outcomes[string(o)] = 0
	}
	diag := map[string]int{}
	type fkey struct{ code, name string }
	seen := map[fkey]bool{}
	for _, a := range b.Attempts {
		s.Outcomes[string(a.Outcome)]++
		if a.Late {
			s.Late++
		}
		if p := a.ProviderKey(); !slices.Contains(s.Providers, p) {
			s.Providers = append(s.Providers, p)
		}
		if healthy(a) {
			continue
		}
		if s.FirstFailed == nil {
			t := a.CreatedAt
			s.FirstFailed = &t
		}
		if a.Diagnosis != "" {
			diag[a.Diagnosis]++
		}
		for _, f := range b.DNS[a.ID].Findings {
			if f.Severity >= dnscheck.SeverityError && !seen[fkey{f.Code, f.Name}] {
				seen[fkey{f.Code, f.Name}] = true
				s.DNSFindings = append(s.DNSFindings, f)
			}
		}
	}
	slices.Sort(s.Providers)
	for t, n := range diag {
		s.Diagnoses = append(s.Diagnoses, Count{t, n})
	}
	slices.SortFunc(s.Diagnoses, func(x, y Count) int { return cmp.Or(cmp.Compare(y.Count, x.Count), cmp.Compare(x.Text, y.Text)) })
	for _, e := range b.Timeline {
		switch e.Kind {
		case KindDNSChange:
			s.DNSChanges++
		case KindTransition:
			s.Transitions = append(s.Transitions, e.At.UTC().Format(time.RFC3339)+" "+e.Summary)
		}
	}
	return s
}
