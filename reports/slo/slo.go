// Package slo evaluates delivery objectives from the attempt history: the
// SLI (good / total, good = in the inbox within the objective's latency),
// the error budget left over the objective's window, and burn rates over
// the multiwindow pairs of the Google SRE workbook (page at 1h & 5m ≥ 14.4×
// or 6h & 30m ≥ 6×, ticket at 3d & 6h ≥ 1×). configs/prometheus holds the
// same objectives as recording and alerting rules.
package slo

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets/objective"
)

// Store counts attempts and reads route history (reports/store.SQLite).
type Store interface {
	Tally(ctx context.Context, f store.TallyFilter) (good, total int64, err error)
	TallyAgents(ctx context.Context, f store.TallyFilter) ([]store.AgentTally, error)
	Transitions(ctx context.Context, route string, since time.Time, limit int) ([]store.RouteTransition, error)
}

// BurnAlert is one multiwindow burn-rate condition.
type BurnAlert struct {
	Severity string  `json:"severity"` // page | ticket
	Long     string  `json:"long"`
	Short    string  `json:"short"`
	Factor   float64 `json:"factor"`
	Firing   bool    `json:"firing"`
}

// burnAlerts are the workbook's pairs; windows are keys of burnWindows.
var burnAlerts = []BurnAlert{
	{Severity: "page", Long: "1h", Short: "5m", Factor: 14.4},
	{Severity: "page", Long: "6h", Short: "30m", Factor: 6},
	{Severity: "ticket", Long: "3d", Short: "6h", Factor: 1},
}

var burnWindows = []struct {
	name string
	d    time.Duration
}{
	{"5m", 5 * time.Minute}, {"30m", 30 * time.Minute}, {"1h", time.Hour},
	{"6h", 6 * time.Hour}, {"3d", 72 * time.Hour},
}

// Status is one objective's evaluation: what GET /api/v1/slo returns.
type Status struct {
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Route       string  `json:"route"`
	Sender      string  `json:"sender"`
	Provider    string  `json:"provider"`
	Objective   float64 `json:"objective"` // percent
	LatencyS    float64 `json:"latency_seconds"`
	Window      string  `json:"window"`
	Good        int64   `json:"good"`
	Total       int64   `json:"total"`
	// SLI is good/total over the window (0 with no attempts yet).
	SLI float64 `json:"sli"`
	// ErrorBudgetRemaining is the share of the window's error budget left:
	// 1 untouched, 0 spent, negative overspent.
	ErrorBudgetRemaining float64            `json:"error_budget_remaining"`
	BurnRates            map[string]float64 `json:"burn_rates"`
	Alerts               []BurnAlert        `json:"alerts"`
	EvaluatedAt          string             `json:"evaluated_at"`
	// Agents is the same objective over the window per agent that
	// probed in it (agents sharing a PostgreSQL store each count their
	// own attempts; the fields above count every agent's). [] with no
	// attempts.
	Agents []AgentStatus `json:"agents"`
}

// AgentStatus is an SLO over its window counted from one agent's
// attempts.
type AgentStatus struct {
	Agent                string  `json:"agent"` // "" for attempts stored before they named their agent
	Good                 int64   `json:"good"`
	Total                int64   `json:"total"`
	SLI                  float64 `json:"sli"`
	ErrorBudgetRemaining float64 `json:"error_budget_remaining"`
}

// FastBurn reports whether the fast page fires: 1h and 5m both burning at
// ≥ 14.4× (the slower 6h/30m page does not fail a route over).
func (s Status) FastBurn() bool {
	for _, a := range s.Alerts {
		if a.Severity == "page" && a.Long == "1h" && a.Firing {
			return true
		}
	}
	return false
}

// Options configure an Evaluator.
type Options struct {
	Store Store
	Now   func() time.Time
	// Active returns a route's current active sender (failover), used
	// for the time after its last transition; default the primary.
	Active func(route string) string
	// CacheFor is how long an evaluation is reused (default 5s).
	CacheFor time.Duration
	// Logger gets the evaluations Run could not make.
	Logger *slog.Logger
}

// Evaluator evaluates the config's SLOs.
type Evaluator struct {
	slos   []objective.SLO
	config Config
	opts   Options

	mu     sync.Mutex
	last   []Status
	lastAt time.Time
}

// Config is what the evaluator reads of the configuration;
// *targets.Config has it.
type Config interface {
	Objectives() []objective.SLO
	// Primary is a route's primary sender.
	Primary(route string) string
}

// New returns an Evaluator for cfg's objectives.
func New(cfg Config, opts Options) *Evaluator {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CacheFor == 0 {
		opts.CacheFor = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Evaluator{slos: cfg.Objectives(), config: cfg, opts: opts}
}

// Evaluate returns every SLO's status, from a cache younger than CacheFor.
func (e *Evaluator) Evaluate(ctx context.Context) ([]Status, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.opts.Now()
	if e.last != nil && now.Sub(e.lastAt) < e.opts.CacheFor {
		return e.last, nil
	}
	out := make([]Status, 0, len(e.slos))
	for _, s := range e.slos {
		st, err := e.evaluate(ctx, s, now)
		if err != nil {
			return nil, fmt.Errorf("slo %s: %w", s.Name, err)
		}
		out = append(out, st)
	}
	e.last, e.lastAt = out, now
	return out, nil
}

// FastBurn reports whether an SLO of route burns at the fast-burn rate, by
// the latest evaluation (for failover.Options.FastBurn).
func (e *Evaluator) FastBurn(route string) (bool, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.last {
		if s.Route == route && s.FastBurn() {
			return true, fmt.Sprintf("SLO %s burns its error budget %.1f× (1h) and %.1f× (5m)", s.Name, s.BurnRates["1h"], s.BurnRates["5m"])
		}
	}
	return false, ""
}

func (e *Evaluator) evaluate(ctx context.Context, s objective.SLO, now time.Time) (Status, error) {
	st := Status{Name: s.Name, Description: s.String(), Route: s.Route, Sender: s.Sender, Provider: s.Provider,
		Objective: s.Objective, LatencyS: s.Latency.Seconds(), Window: s.Window.String(),
		BurnRates: map[string]float64{}, EvaluatedAt: now.UTC().Format(time.RFC3339)}
	budget := 1 - s.Target()
	burn := func(good, total int64) float64 {
		if total == 0 {
			return 0
		}
		return float64(total-good) / float64(total) / budget
	}
	for _, w := range burnWindows {
		good, total, err := e.tally(ctx, s, now.Add(-w.d), now)
		if err != nil {
			return st, err
		}
		st.BurnRates[w.name] = burn(good, total)
	}
	agents, err := e.tallyAgents(ctx, s, now.Add(-s.Window), now)
	if err != nil {
		return st, err
	}
	var good, total int64
	st.Agents = []AgentStatus{}
	for _, a := range agents {
		good, total = good+a.Good, total+a.Total
		as := AgentStatus{Agent: a.Agent, Good: a.Good, Total: a.Total, ErrorBudgetRemaining: 1}
		if a.Total > 0 {
			as.SLI = float64(a.Good) / float64(a.Total)
			as.ErrorBudgetRemaining = 1 - burn(a.Good, a.Total)
		}
		st.Agents = append(st.Agents, as)
	}
	st.Good, st.Total = good, total
	st.ErrorBudgetRemaining = 1
	if total > 0 {
		st.SLI = float64(good) / float64(total)
		st.ErrorBudgetRemaining = 1 - burn(good, total)
	}
	for _, a := range burnAlerts {
		a.Firing = st.BurnRates[a.Long] >= a.Factor && st.BurnRates[a.Short] >= a.Factor
		st.Alerts = append(st.Alerts, a)
	}
	return st, nil
}

// tally counts good and total attempts of s created in [from, to). A
// route's attempts are those of whichever sender was active at the time.
func (e *Evaluator) tally(ctx context.Context, s objective.SLO, from, to time.Time) (good, total int64, err error) {
	if s.Route == "" {
		return e.opts.Store.Tally(ctx, store.TallyFilter{From: from, To: to, Sender: s.Sender, Provider: s.Provider, Latency: s.Latency})
	}
	spans, err := e.activeSpans(ctx, s.Route, from, to)
	if err != nil {
		return 0, 0, err
	}
	for _, sp := range spans {
		g, t, err := e.opts.Store.Tally(ctx, store.TallyFilter{From: sp.from, To: sp.to, Sender: sp.sender, Latency: s.Latency})
		if err != nil {
			return 0, 0, err
		}
		good, total = good+g, total+t
	}
	return good, total, nil
}

// tallyAgents is tally per agent, by agent.
func (e *Evaluator) tallyAgents(ctx context.Context, s objective.SLO, from, to time.Time) ([]store.AgentTally, error) {
	spans, provider := []span{{s.Sender, from, to}}, s.Provider
	if s.Route != "" { // as tally: a route's SLO counts every provider
		provider = ""
		var err error
		if spans, err = e.activeSpans(ctx, s.Route, from, to); err != nil {
			return nil, err
		}
	}
	var out []store.AgentTally
	for _, sp := range spans {
		ts, err := e.opts.Store.TallyAgents(ctx, store.TallyFilter{From: sp.from, To: sp.to, Sender: sp.sender, Provider: provider, Latency: s.Latency})
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			i := slices.IndexFunc(out, func(o store.AgentTally) bool { return o.Agent == t.Agent })
			if i < 0 {
				out = append(out, t)
				continue
			}
			out[i].Good, out[i].Total = out[i].Good+t.Good, out[i].Total+t.Total
		}
	}
	slices.SortFunc(out, func(a, b store.AgentTally) int { return strings.Compare(a.Agent, b.Agent) })
	return out, nil
}

type span struct {
	sender   string
	from, to time.Time
}

// activeSpans splits [from, to) by the route's active sender.
func (e *Evaluator) activeSpans(ctx context.Context, route string, from, to time.Time) ([]span, error) {
	trs, err := e.opts.Store.Transitions(ctx, route, from, 0)
	if err != nil {
		return nil, err
	}
	current := e.config.Primary(route)
	if e.opts.Active != nil {
		if a := e.opts.Active(route); a != "" {
			current = a
		}
	}
	sender := current
	if len(trs) > 0 {
		sender = trs[0].FromSender
	}
	var out []span
	start := from
	for _, t := range trs {
		if t.ToSender == sender {
			continue
		}
		if t.At.After(start) {
			out = append(out, span{sender, start, t.At})
		}
		sender, start = t.ToSender, t.At
	}
	if to.After(start) {
		out = append(out, span{sender, start, to})
	}
	return out, nil
}

// Run evaluates every interval and hands the statuses to report (e.g.
// SLO burn alerts and metrics) until ctx is done.
func (e *Evaluator) Run(ctx context.Context, interval time.Duration, report func(context.Context, []Status)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		sts, err := e.Evaluate(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			e.opts.Logger.Error("evaluate SLOs", "err", err)
		case err == nil && report != nil:
			report(ctx, sts)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
