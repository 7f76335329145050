// Package pipeline wires what happens to finished attempts: rounds feed
// failover and alert rules, SLOs are evaluated from the store, route
// transitions and alerts go out through the outbox, and all of it is
// served by the API and counted in metrics. The daemon (cmd/otpprobe) and
// the game-day tests assemble it the same way.
package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/reports/alert"
	"github.com/otpprobe/otpprobe/reports/api"
	"github.com/otpprobe/otpprobe/reports/attempts"
	"github.com/otpprobe/otpprobe/reports/dnswatch"
	"github.com/otpprobe/otpprobe/reports/evidence"
	"github.com/otpprobe/otpprobe/reports/failover"
	"github.com/otpprobe/otpprobe/reports/incidents"
	"github.com/otpprobe/otpprobe/reports/metrics"
	"github.com/otpprobe/otpprobe/reports/rounds"
	"github.com/otpprobe/otpprobe/reports/slo"
	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
)

// Store is what the pipeline keeps in the store.
type Store interface {
	failover.Store
	alert.Store
	slo.Store
	incidents.Reader
	incidents.Store
}

var _ Store = (*store.SQLite)(nil)

// Options configure a Pipeline.
type Options struct {
	Store Store
	// History is the attempt history the API serves (usually Store too);
	// nil: the attempts endpoints answer 404.
	History attempts.Source
	Metrics *metrics.Metrics // optional
	Logger  *slog.Logger
	// Extra notifiers besides the config's (tests).
	Notifiers []alert.Notifier
	// RetryBase and RetryMax bound notification retry delays (defaults 2s
	// and 5m).
	RetryBase, RetryMax time.Duration
	// SLOEvery is how often SLOs are evaluated for alerts and metrics
	// (default 30s).
	SLOEvery time.Duration
	// RoundObservers also get every finished round, after failover,
	// alerts and incidents saw it (the lab's console lines).
	RoundObservers []func(context.Context, rounds.Round)
	// Poll is how often pins from other processes are read (default 2s).
	Poll time.Duration
	// Shared is set when other agents share the store (PostgreSQL): one
	// elected agent takes the route decisions from every agent's rounds.
	Shared *failover.Shared
}

// Pipeline is the assembled reports side of the prober.
type Pipeline struct {
	Rounds   *rounds.Assembler
	Failover *failover.Failover
	Alerts   *alert.Manager
	Rules    *alert.Rules
	SLOs     *slo.Evaluator
	// Incidents records incidents as rounds finish.
	Incidents *incidents.Tracker

	opts    Options
	cfg     *targets.Config
	reports *metrics.Reports

	dnsOnce   sync.Once
	dnsEvents chan dnswatch.Event
	stopped   chan struct{} // closed when Run returns: DNS alerts stop too
	stopOnce  sync.Once
}

// New loads route and alert state from the store and wires the parts.
func New(ctx context.Context, cfg *targets.Config, opts Options) (*Pipeline, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SLOEvery == 0 {
		opts.SLOEvery = 30 * time.Second
	}
	p := &Pipeline{opts: opts, cfg: cfg, stopped: make(chan struct{})}
	notifiers := append([]alert.Notifier(nil), opts.Notifiers...)
	for _, w := range cfg.Alerts.Webhooks {
		n, err := alert.NewWebhook(w)
		if err != nil {
			return nil, err
		}
		notifiers = append(notifiers, n)
	}
	for _, am := range cfg.Alerts.Alertmanagers {
		n, err := alert.NewAlertmanager(am)
		if err != nil {
			return nil, err
		}
		notifiers = append(notifiers, n)
	}
	aopts := alert.Options{Store: opts.Store, Notifiers: notifiers, Logger: opts.Logger.With("component", "alert"),
		Agent: cfg.Agent, RetryBase: opts.RetryBase, RetryMax: opts.RetryMax}
	if opts.Metrics != nil {
		p.reports = metrics.NewReports(opts.Metrics)
		for _, n := range notifiers {
			p.reports.InitNotifier(n.Name())
		}
		aopts.Delivered = p.reports.Notified
		aopts.Changed = func(a alert.Alert) { p.reports.AlertChanged(a.Name, a.Labels["severity"], a.Status == alert.Firing) }
	}
	var err error
	if p.Alerts, err = alert.New(ctx, aopts); err != nil {
		return nil, err
	}
	p.Rules = alert.NewRules(p.Alerts, cfg.Alerts)

	p.SLOs = slo.New(cfg, slo.Options{Store: opts.Store, Logger: opts.Logger.With("component", "slo"), Active: func(route string) string {
		if p.Failover == nil {
			return ""
		}
		d, _ := p.Failover.Decision(route)
		return d.ActiveSender
	}})

	fopts := failover.Options{Store: opts.Store, Logger: opts.Logger.With("component", "failover"), Agent: cfg.Agent,
		FastBurn: p.SLOs.FastBurn, Poll: opts.Poll, Shared: opts.Shared, Loaded: p.loaded, Leading: p.leading,
		Outbox: func(r targets.Route, t failover.Transition) []store.OutboxEntry {
			return p.Alerts.Entries(alert.KindTransition, r.Webhooks, t)
		},
		Changed: []func(context.Context, failover.Transition){p.transitioned},
	}
	if p.Failover, err = failover.New(ctx, cfg, fopts); err != nil {
		return nil, err
	}
	for _, d := range p.Failover.Decisions() {
		p.routeMetrics(d)
		p.leading(d.Route, opts.Shared == nil) // alone, this agent decides; shared, once elected
		// A state loaded from the store may need its alert (first start
		// with this alert state, or a resolved alert lost to a crash).
		if err := p.Alerts.RouteChanged(ctx, d.Route, d.Primary, d.ActiveSender, d.State, d.Reason, d.Diagnosis, d.Evidence); err != nil {
			return nil, err
		}
	}
	if p.Incidents, err = incidents.New(ctx, cfg, opts.Store, opts.Logger.With("component", "incidents")); err != nil {
		return nil, err
	}
	p.Rounds = rounds.New(cfg, rounds.Options{Logger: opts.Logger.With("component", "rounds")},
		append([]func(context.Context, rounds.Round){p.Failover.ObserveRound, p.Rules.ObserveRound, p.Incidents.ObserveRound},
			opts.RoundObservers...)...)
	return p, nil
}

// Observe is the engine observer: probe.Options.Observers.
func (p *Pipeline) Observe(a *attempt.Attempt) { p.Rounds.Observe(a) }

// RoundStarted is the engine's round hook: probe.Options.RoundStarted.
func (p *Pipeline) RoundStarted(r *attempt.Round) { p.Rounds.Begin(r) }

func (p *Pipeline) transitioned(ctx context.Context, t failover.Transition) {
	p.Alerts.Wake() // the transition's webhooks were queued with it
	d := t.Decision
	if err := p.Alerts.RouteChanged(ctx, t.Route, d.Primary, t.ToSender, t.ToState, d.Reason, d.Diagnosis, d.Evidence); err != nil {
		p.opts.Logger.Error("route alert", "route", t.Route, "err", err)
	}
	if p.opts.Metrics != nil {
		p.routeMetrics(d)
		if t.FromSender != t.ToSender {
			p.opts.Metrics.Failover(t.Route, t.FromSender, t.ToSender)
		}
	}
}

// loaded is told about a decision another agent took (a shared store):
// this agent's metrics and route alert follow it, as they follow its own,
// so an alert fired here at start is resolved here too.
func (p *Pipeline) loaded(d failover.Decision) {
	p.routeMetrics(d)
	if err := p.Alerts.RouteChanged(context.Background(), d.Route, d.Primary, d.ActiveSender, d.State, d.Reason, d.Diagnosis, d.Evidence); err != nil {
		p.opts.Logger.Error("route alert", "route", d.Route, "err", err)
	}
}

func (p *Pipeline) leading(route string, leading bool) {
	if p.opts.Metrics != nil {
		p.opts.Metrics.SetRouteLeader(route, leading)
	}
}

func (p *Pipeline) routeMetrics(d failover.Decision) {
	if p.opts.Metrics != nil {
		p.opts.Metrics.SetRoute(d.Route, d.ActiveSender, d.State)
	}
}

func (p *Pipeline) sloEvaluated(ctx context.Context, sts []slo.Status) {
	p.Alerts.ObserveSLOs(ctx, sts)
	if p.reports != nil {
		for _, s := range sts {
			p.reports.SetSLO(s.Name, s.Objective/100, s.SLI, s.ErrorBudgetRemaining, s.BurnRates)
		}
	}
}

// Register adds the API to mux.
func (p *Pipeline) Register(mux *http.ServeMux) {
	o := api.Options{Routes: p.Failover, Transitions: p.opts.Store, SLOs: p.SLOs, Alerts: p.Alerts,
		Attempts: p.opts.History, Incidents: p.opts.Store, Logger: p.opts.Logger.With("component", "api")}
	if r, ok := p.opts.History.(evidence.Reader); ok {
		o.Evidence = evidence.Builder{Reader: r, Config: p.cfg}
	}
	api.Register(mux, o)
}

// Run runs rounds, failover, alert delivery and SLO evaluation until ctx
// is done, and returns when all have stopped (DNS change alerts with
// them).
func (p *Pipeline) Run(ctx context.Context) {
	defer p.stopOnce.Do(func() { close(p.stopped) })
	var wg sync.WaitGroup
	for _, run := range []func(context.Context){
		p.Rounds.Run,
		p.Failover.Run,
		p.Alerts.Run,
		func(ctx context.Context) { p.SLOs.Run(ctx, p.opts.SLOEvery, p.sloEvaluated) },
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(ctx)
		}()
	}
	wg.Wait()
}

// String names the parts for logs.
func (p *Pipeline) String() string {
	return fmt.Sprintf("pipeline (%d routes)", len(p.Failover.Decisions()))
}
