package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/otpprobe/otpprobe/probe"
	"github.com/otpprobe/otpprobe/reports/api"
	"github.com/otpprobe/otpprobe/targets"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", stderr)
	path := fs.String("config", "", "config file (required)")
	level := logLevelFlag(fs)
	if code, ok := parseFlagsOnly(fs, args, stderr); !ok {
		return code
	}
	cfg, code := loadConfig(*path, "run", stderr)
	if cfg == nil {
		return code
	}
	logger := jsonLogger(stderr, level)
	return runDaemon(ctx, cfg, logger, stderr)
}

// runDaemon runs the scheduler, watchers and HTTP server until ctx ends.
// Attempts in flight stay pending in the store and are resumed next start.
func runDaemon(ctx context.Context, cfg *targets.Config, logger *slog.Logger, stderr io.Writer) int {
	if err := cfg.HTTP.CheckExposure(); err != nil {
		fmt.Fprintf(stderr, "otpprobe: %v\n", err)
		return exitUsage
	}
	p, err := openProber(ctx, cfg, logger)
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe: %v\n", err)
		return exitRuntime
	}
	defer p.close()
	auth := api.NewAuth(cfg.HTTP, logger.With("component", "http"))
	addr, err := p.serveHTTP(ctx, cfg.HTTP, auth, logger)
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe: %v\n", err)
		return exitRuntime
	}
	sched, err := probe.NewScheduler(p.engine, schedulerJitter, p.metrics.SkippedRun)
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe: %v\n", err)
		return exitUsage
	}
	if err := p.engine.Start(ctx); err != nil {
		fmt.Fprintf(stderr, "otpprobe: %v\n", err)
		return exitRuntime
	}
	logger.Info("otpprobe running", "http", addr, "tls", cfg.HTTP.TLS != nil, "api_tokens", len(cfg.HTTP.Tokens),
		"probes", len(cfg.Probes), "agent", cfg.Agent)
	reports := make(chan struct{})
	go func() {
		defer close(reports)
		p.pipeline.Run(ctx) // rounds → failover and alerts, SLOs, outbox delivery
	}()
	dnsDone := make(chan struct{}) // the DNS checks write to the store: wait before closing it
	go func() {
		defer close(dnsDone)
		if err := p.dns.Run(ctx); err != nil {
			logger.Error("DNS checks not scheduled", "err", err)
		}
	}()
	sched.Start(ctx) // returns after ctx ends and running rounds finished
	<-reports
	<-dnsDone
	<-p.engine.Done() // a watcher may be storing an arrival
	logger.Info("otpprobe stopped")
	return exitOK
}

func stderrLogger(stderr io.Writer, verbose bool) *slog.Logger {
	if !verbose {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(stderr, nil))
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// schedulerJitter spreads agents' runs so that they do not all submit in
// the same second.
const schedulerJitter = 2 * time.Second
