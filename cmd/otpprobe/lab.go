package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/otpprobe/otpprobe/lab"
)

func cmdLab(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "scenarios":
			for _, s := range lab.Scenarios() {
				fmt.Fprintf(stdout, "%-26s %s\n", s.Name, s.Description)
			}
			return exitOK
		case "serve":
			return cmdLabServe(ctx, args[1:], stdout, stderr)
		}
	}
	return cmdLabDemo(ctx, args, stdout, stderr)
}

// scenarioList parses --scenario: one name or several joined by commas.
func scenarioList(s string) ([]string, error) {
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if _, err := lab.LookupScenario(name); err != nil {
			return nil, err
		}
		out = append(out, name)
	}
	return out, nil
}

// labWorld starts a world with the scenarios applied and its control API
// listening, and writes its endpoints to endpointsFile when one is given;
// stop releases everything.
func labWorld(ctx context.Context, scenarios []string, dir, endpointsFile string, logger *slog.Logger) (w *lab.World, ep *lab.Endpoints, stop func(), err error) {
	w, err = lab.Start(ctx, lab.Options{Logger: logger, Dir: dir})
	if err != nil {
		return nil, nil, nil, err
	}
	for _, s := range scenarios {
		if err := w.Apply(s); err != nil {
			w.Close()
			return nil, nil, nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		w.Close()
		return nil, nil, nil, err
	}
	srv := &http.Server{Handler: w.ControlHandler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	stop = func() {
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		w.Close()
	}
	ep = w.Endpoints()
	ep.Control = "http://" + ln.Addr().String()
	if endpointsFile != "" {
		if err := ep.WriteFile(endpointsFile); err != nil {
			stop()
			return nil, nil, nil, err
		}
	}
	return w, ep, stop, nil
}

func cmdLabServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("lab serve", stderr)
	scenario := fs.String("scenario", lab.Healthy, "scenario(s) to apply at start, comma-separated")
	endpointsFile := fs.String("endpoints-file", "", "write the endpoints JSON here (atomically) instead of stdout")
	dir := fs.String("dir", "", "directory for the lab CA file (default: a temporary directory)")
	verbose := fs.Bool("v", false, "log the world's activity to stderr")
	if code, ok := parseFlagsOnly(fs, args, stderr); !ok {
		return code
	}
	names, err := scenarioList(*scenario)
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe lab serve: %v\n", err)
		return exitUsage
	}
	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	w, ep, stop, err := labWorld(ctx, names, *dir, *endpointsFile, logger)
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe lab serve: %v\n", err)
		return exitRuntime
	}
	defer stop()
	if *endpointsFile != "" {
		fmt.Fprintf(stderr, "lab world running (scenario %s); endpoints in %s; control %s; Ctrl-C stops it\n",
			strings.Join(w.Applied(), ","), *endpointsFile, ep.Control)
	} else if err := writeIndentedJSON(stdout, ep); err != nil {
		return exitRuntime
	}
	<-ctx.Done()
	return exitOK
}

// cmdLabDemo starts a world, points the prober at it through a generated
// config and runs the prober continuously (the demo) or once.
func cmdLabDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("lab", stderr)
	scenario := fs.String("scenario", lab.Healthy, "scenario(s) to apply at start, comma-separated")
	listen := fs.String("listen", "127.0.0.1:8080", "HTTP address for metrics and the API")
	endpointsFile := fs.String("endpoints-file", "", "also write the world's endpoints JSON here")
	schedule := fs.String("schedule", "", "override every probe's schedule (e.g. '@every 3s')")
	once := fs.Bool("once", false, "run every probe once, print outcomes and exit like 'otpprobe once'")
	format := fs.String("format", "table", "with --once: table or json")
	deadline := fs.Duration("deadline", 0, "with --once: override every probe's deadline")
	dir := fs.String("dir", "", "directory for the generated config, CA and database (default: temporary)")
	verbose := fs.Bool("v", false, "with --once: log progress to stderr")
	level := logLevelFlag(fs)
	logFormat := fs.String("log-format", "text", "text: one line per round on stdout, warnings on stderr; json: every log line as JSON on stderr")
	m365 := fs.String("m365", lab.M365OAuth2, "how the m365 sender authenticates: "+strings.Join(lab.M365Modes, ", "))
	if code, ok := parseFlagsOnly(fs, args, stderr); !ok {
		return code
	}
	if !slices.Contains(lab.M365Modes, *m365) {
		fmt.Fprintf(stderr, "otpprobe lab: --m365 %q: want one of %s\n", *m365, strings.Join(lab.M365Modes, ", "))
		return exitUsage
	}
	names, err := scenarioList(*scenario)
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe lab: %v\n", err)
		return exitUsage
	}
	if *logFormat != "text" && *logFormat != "json" {
		fmt.Fprintf(stderr, "otpprobe lab: --log-format must be text or json, got %q\n", *logFormat)
		return exitUsage
	}
	if err := checkOnceFlags(*format, *deadline); err != nil {
		fmt.Fprintf(stderr, "otpprobe lab: %v\n", err)
		return exitUsage
	}
	workDir := *dir
	if workDir == "" {
		d, err := os.MkdirTemp("", "otpprobe-lab-")
		if err != nil {
			fmt.Fprintf(stderr, "otpprobe lab: %v\n", err)
			return exitRuntime
		}
		defer os.RemoveAll(d)
		workDir = d
	}
	logger := stderrLogger(stderr, *verbose)
	atStart := names
	if !*once {
		// Text: the round lines on stdout say what happens; the log keeps
		// to warnings unless --log-level asks for more.
		levelSet := false
		fs.Visit(func(f *flag.Flag) { levelSet = levelSet || f.Name == "log-level" })
		if *logFormat == "json" {
			logger = jsonLogger(stderr, level)
		} else {
			if !levelSet {
				level.Set("warn")
			}
			logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: &level.LevelVar}))
		}
		// The demo starts the world whole and breaks it once the prober's
		// DNS checks have seen it so: the incident then looks like a real
		// one (a zone edit, then failing mail) with the change on record.
		atStart = nil
	}
	w, ep, stop, err := labWorld(ctx, atStart, workDir, *endpointsFile, logger.WithGroup("lab"))
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe lab: %v\n", err)
		return exitRuntime
	}
	defer stop()
	cfgPath, err := ep.WriteConfig(lab.ConfigOptions{Dir: workDir, Schedule: *schedule, Listen: *listen, M365: *m365})
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe lab: %v\n", err)
		return exitRuntime
	}
	cfg, code := loadConfig(cfgPath, "lab", stderr)
	if cfg == nil {
		return code
	}
	if *once {
		return runOnce(ctx, cfg, onceOptions{format: *format, deadline: *deadline, logger: logger}, stdout, stderr)
	}
	o := daemonOptions{firstRoundNow: true, roundLines: stdout,
		listening: func(addr string) {
			fmt.Fprintf(stdout, "otpprobe lab: dashboard http://%s/ (scenario %s; control %s; config %s; metrics http://%s/metrics)\n",
				addr, strings.Join(names, ","), ep.Control, cfgPath, addr)
		},
		beforeRounds: func(ctx context.Context, p *prober) {
			p.dns.CheckAll(ctx)
			for _, s := range names {
				if s == lab.Healthy {
					continue
				}
				if err := w.Apply(s); err != nil {
					logger.Error("lab scenario", "scenario", s, "err", err)
				}
			}
			p.dns.CheckAll(ctx)
		}}
	return runDaemon(ctx, cfgPath, cfg, logger, stderr, o)
}
