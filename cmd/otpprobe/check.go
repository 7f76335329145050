package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/otpprobe/otpprobe/reports/dnswatch"
	"github.com/otpprobe/otpprobe/reports/metrics"
	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
	"github.com/otpprobe/otpprobe/verify/dnscheck"
	"github.com/otpprobe/otpprobe/verify/resolver"
)

// openDNSWatch builds the DNS watcher of a config: the checks' schedule,
// snapshots in the store, metrics, and onChange (may be nil) for every
// change event.
func openDNSWatch(cfg *targets.Config, r *resolver.Resolver, st *store.SQLite, m *metrics.Metrics, logger *slog.Logger, onChange func(dnswatch.Event)) (*dnswatch.Watcher, error) {
	opts := dnswatch.Options{Resolver: r, Store: st, Logger: logger.With("component", "dnswatch"), OnChange: onChange}
	if m != nil {
		opts.Metrics = m
	}
	w, err := dnswatch.New(cfg, opts)
	if err != nil {
		return nil, err
	}
	// A restarted prober knows the selectors and relays its stored
	// canaries showed before its first new canary arrives.
	if st != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := w.LearnFromStore(ctx, st); err != nil {
			logger.Warn("dnswatch: learning from stored canaries", "err", err)
		}
	}
	return w, nil
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "dns" {
		fmt.Fprintln(stderr, "usage: otpprobe check dns [--config F] [--domain D ...] [--selector S ...] [--resolver ADDR] [--format table|json] [--pin]")
		return exitUsage
	}
	fs := newFlagSet("check dns", stderr)
	path := fs.String("config", "", "config file: its senders' domains, dns_checks and store")
	var domains, selectors, resolvers stringList
	fs.Var(&domains, "domain", "domain to check (repeatable); with --config, only these")
	fs.Var(&selectors, "selector", "DKIM selector that signs mail of every --domain (repeatable)")
	fs.Var(&resolvers, "resolver", "DNS server ip[:port] (repeatable; default: the config's, else /etc/resolv.conf)")
	format := fs.String("format", "table", "output: table or json")
	pin := fs.Bool("pin", false, "store this check as the baseline later checks are compared with (needs --config)")
	if code, ok := parseFlagsOnly(fs, args[1:], stderr); !ok {
		return code
	}
	if *format != "table" && *format != "json" {
		fmt.Fprintf(stderr, "otpprobe check dns: --format must be table or json, got %q\n", *format)
		return exitUsage
	}
	cfg := &targets.Config{}
	if *path != "" {
		if cfg, _ = loadConfig(*path, "check dns", stderr); cfg == nil {
			return exitUsage
		}
	} else if *pin {
		fmt.Fprintln(stderr, "otpprobe check dns: --pin needs --config (the baseline lives in its store)")
		return exitUsage
	} else if len(domains) == 0 {
		fmt.Fprintln(stderr, "otpprobe check dns: give --config or at least one --domain")
		return exitUsage
	}
	checks := cfg.DNSChecks
	if len(resolvers) > 0 {
		checks.Resolver.Servers = resolvers
	}
	if len(domains) > 0 { // only the domains asked for, with what the config knows of them
		var keep []targets.DNSDomain
		for _, d := range checks.Domains {
			if slices.ContainsFunc(domains, func(n string) bool { return strings.EqualFold(strings.TrimSuffix(n, "."), d.Name) }) {
				keep = append(keep, d)
			}
		}
		checks.Domains = keep
	}
	for _, d := range domains {
		checks.Domains = append(checks.Domains, targets.DNSDomain{Name: d, Selectors: selectors})
	}
	if err := checks.Validate(); err != nil {
		fmt.Fprintf(stderr, "otpprobe check dns: %v\n", err)
		return exitUsage
	}
	wcfg := *cfg
	wcfg.DNSChecks = checks
	if len(domains) > 0 { // only the domains asked for
		wcfg.Senders = onlyDomains(cfg.Senders, domains)
	}
	r, err := dnswatch.NewResolver(checks)
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe check dns: %v\n", err)
		return exitRuntime
	}
	opts := dnswatch.Options{Resolver: r}
	var st *store.SQLite
	if *path != "" {
		if st, err = openStore(ctx, cfg.Store); err != nil {
			fmt.Fprintf(stderr, "otpprobe check dns: store: %v\n", err)
			return exitRuntime
		}
		defer st.Close()
		opts.Store = st
	}
	w, err := dnswatch.New(&wcfg, opts)
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe check dns: %v\n", err)
		return exitUsage
	}
	if st != nil {
		// The selectors and relays our own canaries showed are checked
		// too, as the running prober does.
		if err := w.LearnFromStore(ctx, st); err != nil {
			fmt.Fprintf(stderr, "otpprobe check dns: %v\n", err)
			return exitRuntime
		}
	}
	results := w.CheckAll(ctx)
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "otpprobe check dns: interrupted")
		return exitRuntime
	}
	if *pin {
		if err := w.Pin(ctx, results); err != nil {
			fmt.Fprintf(stderr, "otpprobe check dns: %v\n", err)
			return exitRuntime
		}
		fmt.Fprintf(stderr, "pinned the baseline of %d domain(s)\n", len(results))
	}
	failed := false
	for _, res := range results {
		failed = failed || res.Report.Failed()
	}
	if *format == "json" {
		writeIndentedJSON(stdout, checkJSON(results))
	} else {
		printFindings(stdout, results, isTerminal(stdout))
	}
	if failed {
		return exitFailed
	}
	return exitOK
}

// onlyDomains keeps the senders whose From is one of domains.
func onlyDomains(senders []targets.Sender, domains []string) []targets.Sender {
	var out []targets.Sender
	for _, s := range senders {
		for _, d := range domains {
			if strings.EqualFold(strings.TrimSuffix(d, "."), s.Domain()) {
				out = append(out, s)
			}
		}
	}
	return out
}

type domainJSON struct {
	Domain   string             `json:"domain"`
	Findings []dnscheck.Finding `json:"findings"`
	Changes  []changeJSON       `json:"changes"`
	Checked  []dnswatch.Checked `json:"checked"`
}

type changeJSON struct {
	Against string `json:"against"` // previous or baseline
	dnscheck.Change
}

func checkJSON(results []dnswatch.Result) any {
	out := struct {
		Domains []domainJSON `json:"domains"`
	}{Domains: []domainJSON{}}
	for _, r := range results {
		d := domainJSON{Domain: r.Report.Domain, Findings: r.Report.Findings, Changes: []changeJSON{}, Checked: r.Checked}
		if d.Checked == nil {
			d.Checked = []dnswatch.Checked{}
		}
		if d.Findings == nil {
			d.Findings = []dnscheck.Finding{}
		}
		for _, c := range r.Changes {
			d.Changes = append(d.Changes, changeJSON{store.AgainstPrevious, c})
		}
		for _, c := range r.Baseline {
			d.Changes = append(d.Changes, changeJSON{store.AgainstBaseline, c})
		}
		out.Domains = append(out.Domains, d)
	}
	return out
}

var severityColour = map[dnscheck.Severity]string{
	dnscheck.SeverityCritical: "\x1b[1;31m",
	dnscheck.SeverityError:    "\x1b[31m",
	dnscheck.SeverityWarning:  "\x1b[33m",
	dnscheck.SeverityNote:     "\x1b[36m",
}

// printFindings writes one table per domain, worst findings first (the
// checks sort them), then the changes.
func printFindings(w io.Writer, results []dnswatch.Result, colour bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, r := range results {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		status := "ok"
		if r.Report.Failed() {
			status = "FAILED"
		}
		fmt.Fprintf(tw, "%s: %s, %d finding(s)\n", r.Report.Domain, status, len(r.Report.Findings))
		if len(r.Report.Findings) > 0 {
			fmt.Fprintln(tw, "SEVERITY\tCODE\tNAME\tDATA\tMESSAGE")
		}
		for _, f := range r.Report.Findings {
			sev := f.Severity.String()
			if colour {
				// Padding is computed on the escape codes too, equal for
				// every row of the column, so the table stays aligned.
				sev = severityColour[f.Severity] + fmt.Sprintf("%-8s", sev) + "\x1b[0m"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", sev, f.Code, strings.TrimSuffix(f.Name, "."), oneLine(f.Data, 60), f.Message)
		}
		for _, c := range r.Changes {
			fmt.Fprintf(tw, "changed\t%s %s\t%s\t→ %s\t(since the previous check)\n", c.Name, c.Type, rrsetText(c.Before), rrsetText(c.After))
		}
		for _, c := range r.Baseline {
			fmt.Fprintf(tw, "differs\t%s %s\t%s\t→ %s\t(from the pinned baseline)\n", c.Name, c.Type, rrsetText(c.Before), rrsetText(c.After))
		}
		for _, c := range r.Checked {
			what := "DKIM selector"
			if c.Kind == "spf_source_ip" {
				what = "SPF for"
			}
			from := c.From
			if !c.LastSeen.IsZero() {
				from += ", last " + c.LastSeen.UTC().Format("2006-01-02 15:04:05") + " UTC"
			}
			fmt.Fprintf(tw, "checked\t%s %s\t(%s)\n", what, c.Value, from)
		}
	}
	tw.Flush()
}

func rrsetText(r *dnscheck.RRset) string {
	switch {
	case r == nil:
		return "(not read)"
	case len(r.Data) == 0:
		return r.Rcode
	}
	return oneLine(strings.Join(r.Data, " | "), 60)
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

// isTerminal reports whether w is a character device (a terminal), so
// colour never reaches a pipe or a file; NO_COLOR turns it off.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
