package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/otpprobe/otpprobe/probe"
	"github.com/otpprobe/otpprobe/reports/metrics"
	"github.com/otpprobe/otpprobe/reports/retention"
	"github.com/otpprobe/otpprobe/targets"
)

// A generation is the prober running one config: store, engine and
// watchers, scheduler, reports pipeline and DNS checks. A reload stops
// the running generation (rounds in flight finish sending; attempts still
// waiting stay pending in the store) and starts one for the new config,
// which resumes them, so nothing is lost or decided twice and no two
// engines ever watch the same mailboxes. The HTTP listener and the
// tokens' middleware outlive generations.
type generation struct {
	cfg     *targets.Config
	p       *prober
	handler http.Handler
	cancel  context.CancelFunc
	done    chan struct{} // closed once everything of it stopped and the store is closed
	opts    daemonOptions // what a reload starts the next generation with
}

func startGeneration(parent context.Context, cfg *targets.Config, logger *slog.Logger, status *reloadStatus, o daemonOptions) (*generation, error) {
	ctx, cancel := context.WithCancel(parent)
	o.daemon = true
	p, err := openProber(ctx, cfg, logger, o)
	if err != nil {
		cancel()
		return nil, err
	}
	status.publish(p.metrics)
	sched, err := probe.NewScheduler(p.engine, schedulerJitter, p.metrics.SkippedRun)
	if err != nil {
		cancel()
		p.close()
		return nil, err
	}
	if err := p.engine.Start(ctx); err != nil {
		cancel()
		p.close()
		return nil, err
	}
	p.health.Add(watcherProblems(p.engine, time.Now(), readyBudget))
	p.health.Add(storeProblems(p.engine))
	p.health.Add(schedulerProblems(sched))
	watchers := make(chan struct{})
	go func() {
		defer close(watchers)
		publishWatchers(ctx, p.engine, p.metrics)
	}()
	// A reloaded generation keeps the console lines, not the start-up steps.
	g := &generation{cfg: cfg, p: p, handler: p.handler(), cancel: cancel, done: make(chan struct{}),
		opts: daemonOptions{roundLines: o.roundLines}}
	reports := make(chan struct{})
	go func() {
		defer close(reports)
		p.pipeline.Run(ctx) // rounds → failover and alerts, SLOs, outbox delivery
	}()
	if o.beforeRounds != nil {
		o.beforeRounds(ctx, p)
	}
	dnsDone := make(chan struct{}) // the DNS checks write to the store: wait before closing it
	go func() {
		defer close(dnsDone)
		if err := p.dns.Run(ctx); err != nil {
			logger.Error("DNS checks not scheduled", "err", err)
		}
	}()
	first := make(chan struct{})
	go func() {
		defer close(first)
		if !o.firstRoundNow {
			return
		}
		for _, pr := range cfg.Probes {
			if _, err := p.engine.Round(ctx, pr.Name); err != nil && ctx.Err() == nil {
				logger.Error("probe round failed", "probe", pr.Name, "err", err)
			}
		}
	}()
	pruneDone := make(chan struct{}) // retention writes to the store too
	purgeDone := make(chan struct{}) // our canaries in the seed mailboxes' Trash
	go func() {
		defer close(purgeDone)
		probe.PurgeEvery(ctx, cfg, 6*time.Hour, logger.With("component", "purge"))
	}()
	go func() {
		defer close(pruneDone)
		retention.Run(ctx, p.store, retention.Of(cfg.Store.Retention), p.metrics.Pruned, logger.With("component", "retention"))
	}()
	go func() {
		defer close(g.done)
		sched.Start(ctx) // returns after ctx ends and running rounds finished
		<-first
		<-pruneDone
		<-purgeDone
		<-reports
		<-dnsDone
		<-watchers
		<-p.engine.Done() // a watcher may be storing an arrival
		p.close()
	}()
	return g, nil
}

// stop ends the generation and waits until its store is closed.
func (g *generation) stop() {
	g.cancel()
	<-g.done
}

// reload loads cfgPath again. A config that does not load or validate
// is reported (log, otpprobe_config_last_reload_successful 0) and the
// running generation is returned unchanged. Otherwise the running one is
// stopped and the new one started; should it fail to start (a store that
// no longer opens), the previous config is started again, and only when
// that fails too is an error returned.
func reload(ctx context.Context, cfgPath string, old *targets.Config, running *generation, logger *slog.Logger, status *reloadStatus) (*generation, error) {
	logger.Info("SIGHUP: reloading the config", "config", cfgPath)
	cfg, err := targets.Load(cfgPath)
	if err == nil {
		err = cfg.HTTP.CheckExposure()
	}
	if err == nil && cfg.Agent != old.Agent {
		err = fmt.Errorf("agent: changed from %q to %q; the agent's name labels its history, restart to change it", old.Agent, cfg.Agent)
	}
	if err != nil {
		status.set(false)
		status.publish(running.p.metrics)
		logger.Error("config reload failed; still running the previous config", "err", err.Error())
		return running, nil
	}
	if cfg.HTTP.Listen != old.HTTP.Listen || (cfg.HTTP.TLS == nil) != (old.HTTP.TLS == nil) {
		logger.Warn("config reload: http.listen and http.tls take effect at the next restart; the tokens are applied now")
		cfg.HTTP.Listen, cfg.HTTP.TLS = old.HTTP.Listen, old.HTTP.TLS
	}
	running.stop()
	next, err := startGeneration(ctx, cfg, logger, status, running.opts)
	if err != nil {
		status.set(false)
		logger.Error("config reload: the new config did not start; starting the previous one again", "err", err.Error())
		back, berr := startGeneration(ctx, old, logger, status, running.opts)
		if berr != nil {
			return nil, fmt.Errorf("reload: %v; and the previous config no longer starts: %w", err, berr)
		}
		return back, nil
	}
	status.set(true)
	status.publish(next.p.metrics)
	logger.Info("config reloaded", "probes", len(cfg.Probes), "senders", len(cfg.Senders),
		"mailboxes", len(cfg.Mailboxes), "api_tokens", len(cfg.HTTP.Tokens))
	return next, nil
}

// reloadStatus is the outcome of the last reload, kept across
// generations and exported by each generation's metrics.
type reloadStatus struct {
	ok atomic.Bool
	at atomic.Int64 // Unix seconds of the last successful load
}

func (s *reloadStatus) set(ok bool) {
	s.ok.Store(ok)
	if ok {
		s.at.Store(time.Now().Unix())
	}
}

// publish shows the status in m (each generation's metrics).
func (s *reloadStatus) publish(m *metrics.Metrics) {
	m.SetConfigReload(s.ok.Load(), time.Unix(s.at.Load(), 0))
}

// swapHandler serves the current generation's handler; a reload swaps it
// atomically, so a request is served wholly by the old or the new one.
type swapHandler struct{ h atomic.Pointer[http.Handler] }

func (s *swapHandler) set(h http.Handler) { s.h.Store(&h) }

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
}
