// Package incidents groups the history into incidents: from the first
// unhealthy round of a sender (in a probe) to its recovery, with the
// attempts lost, junked and bounced meanwhile, the providers affected,
// the root-cause diagnoses seen and the route transitions. The Tracker
// records them as rounds finish; the views (API, CLI, dashboard, evidence
// bundles) read them back from the store.
package incidents

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sync"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/reports"
	"github.com/otpprobe/otpprobe/reports/rounds"
	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
)

// Store keeps incidents (store.SQLite).
type Store interface {
	Incidents(ctx context.Context, q store.IncidentQuery) ([]store.Incident, error)
	SaveIncident(ctx context.Context, in *store.Incident) error
}

// maxDiagnoses bounds the distinct diagnoses kept per incident.
const maxDiagnoses = 10

// Tracker opens, grows and closes incidents from finished rounds.
type Tracker struct {
	st  Store
	log *slog.Logger

	mu       sync.Mutex
	open     map[key]*tracked
	routes   map[string][]string // sender → routes it is on
	unhealth map[string]int      // sender → providers that make a round unhealthy
	recover  map[string]int      // sender → healthy rounds that end an incident
}

type key struct{ probe, sender string }

type tracked struct {
	in     store.Incident
	streak int // consecutive healthy rounds since the last unhealthy one
	// healthyFrom is the start of the first round of the streak: the
	// incident's end when the streak completes.
	healthyFrom rounds.Round
}

// New loads the open incidents, so a restart continues them.
func New(ctx context.Context, cfg *targets.Config, st Store, logger *slog.Logger) (*Tracker, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &Tracker{st: st, log: logger, open: map[key]*tracked{}, routes: map[string][]string{},
		unhealth: map[string]int{}, recover: map[string]int{}}
	for _, r := range cfg.Routes {
		for _, s := range r.Senders() {
			t.routes[s] = append(t.routes[s], r.Name)
			// The failover's threshold, so an incident and a failover agree
			// on what an unhealthy round is; the loosest when on several.
			if k := max(r.UnhealthyProviders, 1); t.unhealth[s] == 0 || k < t.unhealth[s] {
				t.unhealth[s] = k
			}
			if m := min(max(r.HealthyRounds, 1), 3); m > t.recover[s] {
				t.recover[s] = m
			}
		}
	}
	open, err := st.Incidents(ctx, store.IncidentQuery{OpenOnly: true, Limit: 1000})
	if err != nil {
		return nil, err
	}
	for _, in := range open {
		t.open[key{in.Probe, in.Sender}] = &tracked{in: in}
	}
	return t, nil
}

// Unhealthy reports whether a round of sender counts as unhealthy.
func (t *Tracker) unhealthy(r rounds.Round) bool {
	k := t.unhealth[r.Sender]
	if k == 0 {
		k = 1
	}
	return len(r.Unhealthy()) >= min(k, max(len(r.Providers), 1))
}

// ObserveRound is a rounds subscriber.
func (t *Tracker) ObserveRound(ctx context.Context, r rounds.Round) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := key{r.Probe, r.Sender}
	cur := t.open[k]
	bad := t.unhealthy(r)
	switch {
	case cur == nil && !bad:
		return
	case cur == nil:
		cur = &tracked{in: store.Incident{Probe: r.Probe, Sender: r.Sender, Routes: t.routes[r.Sender],
			StartedAt: r.Start, FirstRound: r.ID, Counts: map[string]int{}}}
		t.open[k] = cur
		t.log.Info("incident opened", "probe", r.Probe, "sender", r.Sender, "unhealthy_at", r.Unhealthy())
	case !bad:
		if cur.streak == 0 {
			cur.healthyFrom = r
		}
		cur.streak++
		if cur.streak < max(t.recover[r.Sender], 1) {
			add(&cur.in, r, false)
			t.save(ctx, cur)
			return
		}
		add(&cur.in, r, false)
		cur.in.EndedAt = cur.healthyFrom.Start
		delete(t.open, k)
		t.log.Info("incident resolved", "id", cur.in.ID, "probe", r.Probe, "sender", r.Sender)
		t.save(ctx, cur)
		return
	}
	cur.streak = 0
	add(&cur.in, r, true)
	t.save(ctx, cur)
}

func (t *Tracker) save(ctx context.Context, cur *tracked) {
	if err := t.st.SaveIncident(ctx, &cur.in); err != nil {
		t.log.Error("store incident", "sender", cur.in.Sender, "err", err)
	}
}

// add counts round r into in.
func add(in *store.Incident, r rounds.Round, bad bool) {
	if in.Counts == nil {
		in.Counts = map[string]int{}
	}
	if bad {
		in.Rounds++
		in.LastBadAt = r.Start
		in.LastRound = r.ID
		for _, p := range r.Unhealthy() {
			if !slices.Contains(in.Providers, p) {
				in.Providers = append(in.Providers, p)
			}
		}
		slices.Sort(in.Providers)
	}
	for _, a := range r.Attempts {
		in.Counts[string(a.Outcome)]++
		in.Counts["total"]++
		if a.Late {
			in.Counts["late"]++
		}
		if a.Diagnosis != "" && !reports.Healthy(a) {
			addDiagnosis(in, a)
		}
	}
}

func addDiagnosis(in *store.Incident, a *attempt.Attempt) {
	for i := range in.Diagnoses {
		if in.Diagnoses[i].Text == a.Diagnosis {
			in.Diagnoses[i].Count++
			slices.SortStableFunc(in.Diagnoses, func(x, y store.Diagnosis) int { return cmp.Compare(y.Count, x.Count) })
			return
		}
	}
	if len(in.Diagnoses) < maxDiagnoses {
		in.Diagnoses = append(in.Diagnoses, store.Diagnosis{Text: a.Diagnosis, Count: 1})
	}
}
