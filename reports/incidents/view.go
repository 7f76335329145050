package incidents

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/otpprobe/otpprobe/reports/attempts"
	"github.com/otpprobe/otpprobe/reports/store"
)

// Reader is what the views read (store.SQLite).
type Reader interface {
	Incidents(ctx context.Context, q store.IncidentQuery) ([]store.Incident, error)
	Incident(ctx context.Context, id int64) (store.Incident, error)
	TransitionsBetween(ctx context.Context, routes []string, from, to time.Time) ([]store.RouteTransition, error)
	AlertsBetween(ctx context.Context, from, to time.Time) ([]store.AlertRecord, error)
}

var _ Reader = (*store.SQLite)(nil)

// JSON is an incident's public form (API, CLI, evidence bundles).
type JSON struct {
	ID          int64             `json:"id"`
	State       string            `json:"state"` // open | resolved
	Probe       string            `json:"probe"`
	Sender      string            `json:"sender"`
	Routes      []string          `json:"routes"`
	StartedAt   time.Time         `json:"started_at"`
	EndedAt     *time.Time        `json:"ended_at"` // null while open
	DurationS   int64             `json:"duration_s"`
	Rounds      int               `json:"unhealthy_rounds"`
	Providers   []string          `json:"providers"`
	Counts      Counts            `json:"attempts"`
	Diagnoses   []store.Diagnosis `json:"diagnoses"`
	Transitions []TransitionJSON  `json:"transitions"`
	Alerts      []AlertJSON       `json:"alerts"`
	Window      [2]time.Time      `json:"-"`
	Record      store.Incident    `json:"-"`
}

// Counts are the incident's attempts by outcome.
type Counts struct {
	Total      int `json:"total"`
	Inbox      int `json:"inbox"`
	Spam       int `json:"spam"`
	Bounced    int `json:"bounced"`
	Lost       int `json:"lost"`
	SendFailed int `json:"send_failed"`
	Late       int `json:"late"`
}

// TransitionJSON is a route transition during the incident.
type TransitionJSON struct {
	Route      string    `json:"route"`
	At         time.Time `json:"at"`
	FromState  string    `json:"from_state"`
	ToState    string    `json:"to_state"`
	FromSender string    `json:"from_sender"`
	ToSender   string    `json:"to_sender"`
	Reason     string    `json:"reason"`
	Diagnosis  string    `json:"diagnosis"`
	Evidence   []string  `json:"evidence"`
}

// AlertJSON is an alert that fired during the incident.
type AlertJSON struct {
	Name     string            `json:"name"`
	Status   string            `json:"status"`
	Labels   map[string]string `json:"labels"`
	Summary  string            `json:"summary"`
	StartsAt time.Time         `json:"starts_at"`
	EndsAt   *time.Time        `json:"ends_at"`
	Evidence []string          `json:"evidence"`
}

// List returns the incidents matching q, newest first, with their
// transitions and alerts.
func List(ctx context.Context, r Reader, q store.IncidentQuery, now time.Time) ([]JSON, error) {
	ins, err := r.Incidents(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make([]JSON, 0, len(ins))
	for _, in := range ins {
		j, err := view(ctx, r, in, now)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

// Get returns incident id; the error wraps store.ErrNoIncident when unknown.
func Get(ctx context.Context, r Reader, id int64, now time.Time) (JSON, error) {
	in, err := r.Incident(ctx, id)
	if err != nil {
		return JSON{}, err
	}
	return view(ctx, r, in, now)
}

func view(ctx context.Context, r Reader, in store.Incident, now time.Time) (JSON, error) {
	j := JSON{ID: in.ID, State: "open", Probe: in.Probe, Sender: in.Sender, Routes: orEmpty(in.Routes),
		StartedAt: in.StartedAt, Rounds: in.Rounds, Providers: orEmpty(in.Providers), Diagnoses: in.Diagnoses,
		Transitions: []TransitionJSON{}, Alerts: []AlertJSON{}, Record: in}
	if j.Diagnoses == nil {
		j.Diagnoses = []store.Diagnosis{}
	}
	c := in.Counts
	j.Counts = Counts{Total: c["total"], Inbox: c["inbox"], Spam: c["spam"], Bounced: c["bounced"], Lost: c["lost"],
		SendFailed: c["send_failed"], Late: c["late"]}
	end := now
	if !in.EndedAt.IsZero() {
		j.State = "resolved"
		e := in.EndedAt
		j.EndedAt = &e
		end = e
	}
	j.DurationS = int64(end.Sub(in.StartedAt).Seconds())
	j.Window = [2]time.Time{in.StartedAt, end.Add(time.Millisecond)}
	if len(in.Routes) > 0 {
		trs, err := r.TransitionsBetween(ctx, in.Routes, j.Window[0], j.Window[1])
		if err != nil {
			return JSON{}, err
		}
		for _, t := range trs {
			j.Transitions = append(j.Transitions, TransitionJSON{Route: t.Route, At: t.At, FromState: t.FromState, ToState: t.ToState,
				FromSender: t.FromSender, ToSender: t.ToSender, Reason: t.Reason, Diagnosis: t.Diagnosis, Evidence: orEmpty(t.Evidence)})
		}
	}
	als, err := r.AlertsBetween(ctx, j.Window[0], j.Window[1])
	if err != nil {
		return JSON{}, err
	}
	for _, a := range als {
		if !concerns(a, in) {
			continue
		}
		aj := AlertJSON{Name: a.Name, Status: a.Status, Labels: a.Labels, Summary: a.Annotations["summary"],
			StartsAt: a.StartsAt, Evidence: orEmpty(a.Evidence)}
		if !a.EndsAt.IsZero() {
			e := a.EndsAt
			aj.EndsAt = &e
		}
		j.Alerts = append(j.Alerts, aj)
	}
	return j, nil
}

// concerns reports whether an alert is about the incident's sender or
// one of its routes, or about no sender or route in particular (an SLO).
func concerns(a store.AlertRecord, in store.Incident) bool {
	if s, ok := a.Labels["sender"]; ok {
		return s == in.Sender
	}
	if r, ok := a.Labels["route"]; ok {
		for _, x := range in.Routes {
			if x == r {
				return true
			}
		}
		return false
	}
	return true
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// WriteTable writes incidents as the CLI's table.
func WriteTable(w io.Writer, js []JSON) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tPROBE\tSENDER\tSTARTED\tDURATION\tPROVIDERS\tLOST/SPAM/BOUNCED/FAILED\tTRANSITIONS\tTOP DIAGNOSIS")
	for _, j := range js {
		diag := "-"
		if len(j.Diagnoses) > 0 {
			diag = j.Diagnoses[0].Text
			if r := []rune(diag); len(r) > 70 {
				diag = string(r[:69]) + "…"
			}
		}
		var trs []string
		for _, t := range j.Transitions {
			trs = append(trs, t.ToState)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d/%d/%d\t%s\t%s\n", j.ID, j.State, j.Probe, j.Sender,
			j.StartedAt.Format(time.RFC3339), (time.Duration(j.DurationS) * time.Second).String(), strings.Join(j.Providers, ","),
			j.Counts.Lost, j.Counts.Spam, j.Counts.Bounced, j.Counts.SendFailed, orDash(strings.Join(trs, "→")), diag)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ParseQuery reads the incidents query from URL parameters (or CLI flags
// in the same form): open=true, sender, since (RFC 3339 or a duration
// back from now), limit (1–1000).
func ParseQuery(v url.Values, now time.Time) (store.IncidentQuery, error) {
	var q store.IncidentQuery
	for k := range v {
		switch k {
		case "open", "sender", "since", "limit":
		default:
			return q, fmt.Errorf("unknown parameter %q (known: open, sender, since, limit)", k)
		}
	}
	q.Sender = v.Get("sender")
	switch v.Get("open") {
	case "", "false":
	case "true":
		q.OpenOnly = true
	default:
		return q, fmt.Errorf("open: want true or false, got %q", v.Get("open"))
	}
	var err error
	if q.Since, err = attempts.ParseTime(v.Get("since"), now); err != nil {
		return q, fmt.Errorf("since: %w", err)
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return q, fmt.Errorf("limit: want a number from 1 to 1000, got %q", l)
		}
		q.Limit = n
	}
	return q, nil
}
