package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/user"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
)

const routeUsage = `usage:
  otpprobe route show [ROUTE] --config FILE
  otpprobe route pin ROUTE SENDER [--reason TEXT] --config FILE
  otpprobe route unpin ROUTE --config FILE

pin and unpin write to the store; a running otpprobe applies them within
a few seconds (the API's POST /api/v1/routes/ROUTE/pin acts at once).`

// cmdRoute shows and overrides failover routes through the store, so it
// works whether or not the daemon runs.
func cmdRoute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stderr, routeUsage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	sub := args[0]
	fs := newFlagSet("route "+sub, stderr)
	path := fs.String("config", "", "config file (required)")
	reason := fs.String("reason", "", "with pin: why, recorded with the decision")
	pos, code, ok := parseInterleaved(fs, args[1:])
	if !ok {
		return code
	}
	want := map[string][2]int{"show": {0, 1}, "pin": {2, 2}, "unpin": {1, 1}}[sub]
	if want == [2]int{} && sub != "show" {
		fmt.Fprintf(stderr, "otpprobe route: unknown subcommand %q\n%s\n", sub, routeUsage)
		return exitUsage
	}
	if len(pos) < want[0] || len(pos) > want[1] {
		fmt.Fprintf(stderr, "otpprobe route %s: wrong number of arguments\n%s\n", sub, routeUsage)
		return exitUsage
	}
	cfg, code := loadConfig(*path, "route", stderr)
	if cfg == nil {
		return code
	}
	if len(cfg.Routes) == 0 {
		fmt.Fprintf(stderr, "otpprobe route: %s configures no routes\n", *path)
		return exitUsage
	}
	var r *targets.Route
	if len(pos) > 0 {
		var found bool
		if r, found = cfg.Route(pos[0]); !found {
			fmt.Fprintf(stderr, "otpprobe route: unknown route %q\n", pos[0])
			return exitUsage
		}
	}
	st, err := openStore(ctx, cfg.Store)
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe route: %v\n", err)
		return exitRuntime
	}
	defer st.Close()
	switch sub {
	case "pin":
		if !slices.Contains(r.Senders(), pos[1]) {
			fmt.Fprintf(stderr, "otpprobe route pin: %q is not a sender of route %s (%s)\n", pos[1], r.Name, strings.Join(r.Senders(), ", "))
			return exitUsage
		}
		if err := st.SetPin(ctx, store.RoutePin{Route: r.Name, Sender: pos[1], Reason: *reason, At: time.Now().UTC(),
			Actor: cliActor(), Source: "local"}); err != nil {
			fmt.Fprintf(stderr, "otpprobe route pin: %v\n", err)
			return exitRuntime
		}
		fmt.Fprintf(stdout, "route %s pinned to %s\n", r.Name, pos[1])
	case "unpin":
		if err := st.DeletePin(ctx, r.Name); err != nil {
			fmt.Fprintf(stderr, "otpprobe route unpin: %v\n", err)
			return exitRuntime
		}
		fmt.Fprintf(stdout, "route %s unpinned; failover decides again\n", r.Name)
	default:
		routes := cfg.Routes
		if r != nil {
			routes = []targets.Route{*r}
		}
		if err := showRoutes(ctx, st, routes, stdout); err != nil {
			fmt.Fprintf(stderr, "otpprobe route show: %v\n", err)
			return exitRuntime
		}
	}
	return exitOK
}

func showRoutes(ctx context.Context, st *store.SQLite, routes []targets.Route, w io.Writer) error {
	pins, err := st.Pins(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tACTIVE\tSTATE\tSINCE\tPIN\tREASON")
	for _, r := range routes {
		s, ok, err := st.Route(ctx, r.Name)
		if err != nil {
			return err
		}
		if !ok {
			s = store.RouteState{ActiveSender: r.Primary, State: "primary", Reason: "no decision stored yet"}
		}
		pin := "-"
		if p, ok := pins[r.Name]; ok {
			pin = p.Sender
		}
		since := "-"
		if !s.Since.IsZero() {
			since = s.Since.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, s.ActiveSender, s.State, since, pin, s.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range routes {
		trs, err := st.Transitions(ctx, r.Name, time.Time{}, 10)
		if err != nil {
			return err
		}
		if len(trs) == 0 {
			continue
		}
		fmt.Fprintf(w, "\nlast transitions of %s:\n", r.Name)
		for _, t := range trs {
			by := ""
			if t.Actor != "" {
				by = fmt.Sprintf("  [by %s from %s]", t.Actor, t.Source)
			}
			fmt.Fprintf(w, "  %s  %s(%s) -> %s(%s)  %s%s\n", t.At.Format(time.RFC3339), t.FromState, t.FromSender, t.ToState, t.ToSender, t.Reason, by)
		}
	}
	return nil
}

// cliActor names the local user who pins with otpprobe route.
func cliActor() string {
	if u, err := user.Current(); err == nil {
		return "cli:" + u.Username
	}
	return "cli"
}

// parseInterleaved parses flags that may come before, between or after
// positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	for {
		if code, ok := parseFlags(fs, args); !ok {
			return nil, code, false
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, 0, true
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
