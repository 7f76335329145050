package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/probe"
	"github.com/otpprobe/otpprobe/reports/dashboard"
	"github.com/otpprobe/otpprobe/reports/dnswatch"
	"github.com/otpprobe/otpprobe/reports/failover"
	"github.com/otpprobe/otpprobe/reports/health"
	"github.com/otpprobe/otpprobe/reports/metrics"
	"github.com/otpprobe/otpprobe/reports/pipeline"
	"github.com/otpprobe/otpprobe/reports/rounds"
	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
)

// prober is the assembled product: store, metrics, engine.
type prober struct {
	cfg     *targets.Config
	store   *store.SQLite
	metrics *metrics.Metrics
	engine  *probe.Engine
	// reports: rounds → failover and alerts, SLOs, the API (run by runDaemon)
	pipeline *pipeline.Pipeline
	dns      *dnswatch.Watcher // DNS posture checks; also the engine's diagnosis Enricher
	health   *health.Checker   // /readyz: startGeneration adds the checks
	election *store.Election   // PostgreSQL: this agent's part in the route leader election
}

// openProber opens the store and builds the engine; start it with
// engine.Start. close releases the store.
func openProber(ctx context.Context, cfg *targets.Config, logger *slog.Logger, o daemonOptions) (*prober, error) {
	st, err := openStore(ctx, cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	m := metrics.New(cfg.Agent)
	m.SetVersion(currentVersion().Version) // -ldflags win over the build info here too
	m.InitKnown(knownSeries(cfg), time.Now())
	r, err := dnswatch.NewResolver(cfg.DNSChecks)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("dns_checks.resolver: %w", err)
	}
	var pl *pipeline.Pipeline
	var observers []func(context.Context, rounds.Round)
	if o.roundLines != nil {
		observers = append(observers, func(_ context.Context, r rounds.Round) {
			fmt.Fprintln(o.roundLines, roundLine(cfg, r, pl.Failover.Decision))
		})
	}
	popts := pipeline.Options{Store: st, History: st, Metrics: m, Logger: logger, RoundObservers: observers}
	var election *store.Election
	if cfg.Store.Driver == "postgres" {
		// Agents share the store: one elected agent takes the route
		// decisions from every agent's rounds. otpprobe once records its
		// rounds but never decides.
		popts.Shared = &failover.Shared{Store: st, Election: neverLeads{}}
		if o.daemon {
			if election, err = st.Election(cfg.Agent); err != nil {
				st.Close()
				return nil, err
			}
			popts.Shared.Election = election
		}
	}
	pl, err = pipeline.New(ctx, cfg, popts)
	if err != nil {
		if election != nil {
			election.Close()
		}
		st.Close()
		return nil, err
	}
	dw, err := openDNSWatch(cfg, r, st, m, logger, pl.DNSChanged)
	if err != nil {
		st.Close()
		return nil, err
	}
	eng, err := probe.New(cfg, probe.Options{
		Store: st, Logger: logger,
		Observers: []func(*attempt.Attempt){m.ObserveAttempt, pl.Observe}, RoundStarted: []func(*attempt.Round){pl.RoundStarted},
		// Evidence first (our own DKIM check), then the DNS diagnosis.
		Enrichers:   []func(context.Context, *attempt.Attempt){dkimRecheck(r.LookupTXT), dw.Enrich},
		LoginFailed: m.WatcherLoginFailed, AuthChanged: pl.LoginChanged, LoginBackoffBase: o.loginBackoffBase,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	return &prober{cfg: cfg, store: st, metrics: m, engine: eng, dns: dw, pipeline: pl, health: health.New(nil), election: election}, nil
}

// close ends the election's session (releasing the leadership at once)
// and closes the store.
func (p *prober) close() {
	if p.election != nil {
		p.election.Close()
	}
	p.store.Close()
}

// neverLeads is the election of a process that only records its rounds.
type neverLeads struct{}

func (neverLeads) Leader(context.Context, string) (bool, error) { return false, nil }
func (neverLeads) Live(context.Context, []string) (map[string]bool, error) {
	return map[string]bool{}, nil
}

// handler is the prober's HTTP surface: /metrics, /healthz (liveness),
// /readyz, the API and the dashboard.
func (p *prober) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", p.metrics.Handler())
	p.pipeline.Register(mux)
	mux.Handle("GET /readyz", p.health.Handler())
	mux.HandleFunc("POST /api/v1/watchers/retry", p.retryLogins)
	dashboard.Register(mux, dashboard.Options{Config: p.cfg, History: p.store, Routes: p.pipeline.Failover, SLOs: p.pipeline.SLOs})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// serveHTTP serves handler on h.Listen until ctx ends, over TLS with
// h.TLS. The caller puts the token check in front (api.Auth).
func serveHTTP(ctx context.Context, h targets.HTTP, handler http.Handler, logger *slog.Logger) (string, error) {
	ln, err := net.Listen("tcp", h.Listen)
	if err != nil {
		return "", fmt.Errorf("http.listen %s: %w", h.Listen, err)
	}
	if h.TLS != nil {
		certs, err := newCertReloader(h.TLS.CertFile, h.TLS.KeyFile, logger)
		if err != nil {
			ln.Close()
			return "", fmt.Errorf("http.tls: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.get})
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			logger.Error("http server stopped", "err", err)
		}
	}()
	context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	return ln.Addr().String(), nil
}

// knownSeries is what the config says will be measured, for the metrics
// to export at 0 from the start.
func knownSeries(cfg *targets.Config) metrics.Known {
	var k metrics.Known
	for _, p := range cfg.Probes {
		kp := metrics.KnownProbe{Name: p.Name, Senders: p.Senders, Deadline: p.Deadline}
		for _, name := range p.Mailboxes {
			if mb, ok := cfg.Mailbox(name); ok && !slices.Contains(kp.Providers, mb.Provider) {
				kp.Providers = append(kp.Providers, mb.Provider)
			}
		}
		if sched, err := p.CronSchedule(); err == nil {
			next := sched.Next(time.Now())
			kp.Interval = sched.Next(next).Sub(next)
		}
		k.Probes = append(k.Probes, kp)
	}
	for _, r := range cfg.Routes {
		k.Routes = append(k.Routes, metrics.KnownRoute{Name: r.Name, Senders: r.Senders()})
	}
	return k
}
