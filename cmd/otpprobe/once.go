package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/reports"
	"github.com/otpprobe/otpprobe/targets"
)

func cmdOnce(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("once", stderr)
	path := fs.String("config", "", "config file (required)")
	format := fs.String("format", "table", "output: table or json")
	deadline := fs.Duration("deadline", 0, "override every probe's deadline (e.g. 20s)")
	verbose := fs.Bool("v", false, "log progress to stderr")
	if code, ok := parseFlagsOnly(fs, args, stderr); !ok {
		return code
	}
	if err := checkOnceFlags(*format, *deadline); err != nil {
		fmt.Fprintf(stderr, "otpprobe once: %v\n", err)
		return exitUsage
	}
	cfg, code := loadConfig(*path, "once", stderr)
	if cfg == nil {
		return code
	}
	return runOnce(ctx, cfg, onceOptions{format: *format, deadline: *deadline, logger: stderrLogger(stderr, *verbose)}, stdout, stderr)
}

// checkOnceFlags checks the flags once and lab --once share.
func checkOnceFlags(format string, deadline time.Duration) error {
	if format != "table" && format != "json" {
		return fmt.Errorf("--format must be table or json, got %q", format)
	}
	if deadline < 0 {
		return fmt.Errorf("--deadline must not be negative, got %s", deadline)
	}
	return nil
}

type onceOptions struct {
	format   string
	deadline time.Duration
	logger   *slog.Logger
}

// runOnce runs every probe of cfg once, waits for every outcome and prints
// them; exit 0 only when every attempt reached the inbox in time.
func runOnce(ctx context.Context, cfg *targets.Config, o onceOptions, stdout, stderr io.Writer) int {
	if o.deadline > 0 {
		for i := range cfg.Probes {
			cfg.Probes[i].Deadline = o.deadline
			cfg.Probes[i].LatencySLO = min(cfg.Probes[i].LatencySLO, o.deadline)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p, err := openProber(ctx, cfg, o.logger, daemonOptions{})
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe once: %v\n", err)
		return exitRuntime
	}
	defer p.close()
	if err := p.engine.Start(ctx); err != nil {
		fmt.Fprintf(stderr, "otpprobe once: %v\n", err)
		return exitRuntime
	}
	defer func() { // before p.close: the watchers must stop using the store
		cancel()
		<-p.engine.Done()
	}()
	var (
		mu       sync.Mutex
		attempts []*attempt.Attempt
		wg       sync.WaitGroup
	)
	for _, pr := range cfg.Probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := p.engine.Round(ctx, pr.Name)
			if err != nil {
				fmt.Fprintf(stderr, "otpprobe once: probe %s: %v\n", pr.Name, err)
			}
			if r == nil {
				return
			}
			mu.Lock()
			attempts = append(attempts, r.Attempts...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	ids := make([]string, len(attempts))
	for i, a := range attempts {
		ids[i] = a.ID
	}
	if err := p.engine.Wait(ctx, ids...); err != nil {
		fmt.Fprintf(stderr, "otpprobe once: interrupted before every outcome was known\n")
		return exitRuntime
	}
	slices.SortFunc(attempts, func(a, b *attempt.Attempt) int { return compareAttempts(a, b) })
	healthy := len(attempts) > 0
	views := make([]reports.AttemptJSON, len(attempts))
	for i, a := range attempts {
		views[i] = reports.View(a)
		healthy = healthy && reports.Healthy(a)
	}
	if o.format == "json" {
		writeIndentedJSON(stdout, struct {
			Healthy  bool                  `json:"healthy"`
			Attempts []reports.AttemptJSON `json:"attempts"`
		}{healthy, views})
	} else {
		printTable(stdout, views)
	}
	if !healthy {
		return exitFailed
	}
	return exitOK
}

func compareAttempts(a, b *attempt.Attempt) int {
	for _, c := range [][2]string{{a.Probe, b.Probe}, {a.Sender, b.Sender}, {a.Mailbox, b.Mailbox}} {
		if c[0] != c[1] {
			if c[0] < c[1] {
				return -1
			}
			return 1
		}
	}
	return 0
}

func printTable(w io.Writer, views []reports.AttemptJSON) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROBE\tSENDER\tMAILBOX\tOUTCOME\tLATENCY\tSPF\tDKIM\tDMARC\tSMTP\tDIAGNOSIS")
	for _, v := range views {
		outcome := v.Outcome
		if v.Late {
			outcome += " (late)"
		}
		latency := "-"
		if v.SeenAt != "" && v.SubmittedAt != "" {
			latency = (time.Duration(v.LatencyMS) * time.Millisecond).String()
		}
		smtp := "-"
		if v.SMTP.Stage != "" {
			smtp = fmt.Sprintf("%s %d %s", v.SMTP.Stage, v.SMTP.Code, v.SMTP.Enhanced)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Probe, v.Sender, v.Mailbox, outcome, latency,
			dash(v.Verdicts.SPF), dash(v.Verdicts.DKIM), dash(v.Verdicts.DMARC), smtp, dash(v.Diagnosis))
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
