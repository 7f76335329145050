package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

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
	return runDaemon(ctx, *path, cfg, logger, stderr, daemonOptions{})
}

// daemonOptions are what the lab demo adds to the daemon.
type daemonOptions struct {
	// beforeRounds runs once the first generation is up, before its first
	// round (the lab breaks its world there, after the DNS checks saw it
	// whole).
	beforeRounds func(ctx context.Context, p *prober)
	// firstRoundNow runs every probe once at start instead of waiting for
	// its first scheduled time.
	firstRoundNow bool
	// roundLines gets one human line per finished round.
	roundLines io.Writer
	// listening gets the HTTP address once it is bound, before the first
	// generation starts (the lab prints it on its first line, also for
	// --listen 127.0.0.1:0).
	listening func(addr string)
	// loginBackoffBase shortens the first wait after a refused IMAP login
	// (tests).
	loginBackoffBase time.Duration
	// daemon: this process takes part in the route leader election on a
	// PostgreSQL store (otpprobe once never decides routes there).
	daemon bool
}

// runDaemon runs the scheduler, watchers and HTTP server until ctx ends.
// Attempts in flight stay pending in the store and are resumed next start.
// SIGHUP re-reads cfgPath (reload.go): a config that does not load leaves
// the running one alone.
func runDaemon(ctx context.Context, cfgPath string, cfg *targets.Config, logger *slog.Logger, stderr io.Writer, o daemonOptions) int {
	if err := cfg.HTTP.CheckExposure(); err != nil {
		fmt.Fprintf(stderr, "otpprobe: %v\n", err)
		return exitUsage
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP) // before anything: a HUP must never kill the daemon
	defer signal.Stop(hup)

	status := &reloadStatus{}
	status.set(true)
	// The listener is bound first: a port in use fails before any watcher
	// logs in, and the address is known before the first round.
	auth := api.NewAuth(cfg.HTTP, logger.With("component", "http"))
	var current swapHandler
	current.set(http.HandlerFunc(starting))
	httpCtx, stopHTTP := context.WithCancel(ctx)
	defer stopHTTP()
	addr, err := serveHTTP(httpCtx, cfg.HTTP, auth.Wrap(&current), logger)
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe: %v\n", err)
		return exitRuntime
	}
	if o.listening != nil {
		o.listening(addr)
	}
	gen, err := startGeneration(ctx, cfg, logger, status, o)
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe: %v\n", err)
		return exitRuntime
	}
	current.set(gen.handler)
	logger.Info("otpprobe running", "http", addr, "tls", cfg.HTTP.TLS != nil, "api_tokens", len(cfg.HTTP.Tokens),
		"probes", len(cfg.Probes), "agent", cfg.Agent, "version", currentVersion().Version)
	for {
		select {
		case <-ctx.Done():
			gen.stop()
			logger.Info("otpprobe stopped")
			return exitOK
		case <-hup:
		}
		next, err := reload(ctx, cfgPath, cfg, gen, logger, status)
		if err != nil {
			// The old generation is gone and neither config starts.
			fmt.Fprintf(stderr, "otpprobe: %v\n", err)
			return exitRuntime
		}
		if next == gen {
			continue
		}
		gen, cfg = next, next.cfg
		auth.Set(cfg.HTTP)
		current.set(gen.handler)
	}
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

// starting answers while the first generation starts (a few milliseconds,
// or while a PostgreSQL store is migrated).
func starting(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Retry-After", "1")
	http.Error(w, "otpprobe is starting", http.StatusServiceUnavailable)
}
