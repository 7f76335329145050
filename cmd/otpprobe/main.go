// Command otpprobe proves, continuously and end to end, that one-time-password
// mail really arrives. See README.md for the user's guide.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes shared by every command.
const (
	exitOK      = 0
	exitFailed  = 1 // the probe ran and something is unhealthy
	exitUsage   = 2 // bad flags or a bad config
	exitRuntime = 3 // could not run at all
)

// command is one subcommand: it parses its own flags from args.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"run", "run the prober as a daemon: scheduler, watchers, HTTP API and metrics", cmdRun},
		{"once", "run every probe once, print outcomes, exit 0 only when all are healthy", cmdOnce},
		{"lab", "the embedded mail world: 'lab' (demo), 'lab serve', 'lab scenarios'", cmdLab},
		{"auth", "'auth login' obtains a mailbox's or sender's first OAuth2 refresh token; 'auth test' logs in once", cmdAuth},
		{"validate", "check a config file and print what it describes (no secrets)", cmdValidate},
		{"route", "failover routes: 'route show', 'route pin ROUTE SENDER', 'route unpin ROUTE'", cmdRoute},
		{"check", "'check dns': audit SPF, DKIM, DMARC, MX, MTA-STS and DANE; exit 1 on errors", cmdCheck},
		{"attempts", "the attempt history: 'attempts [filters]', 'attempts show ID'", cmdAttempts},
		{"incidents", "incidents: from a sender's first unhealthy round to its recovery", cmdIncidents},
		{"evidence", "write a postmortem evidence bundle (zip or directory) for attempts, a route's window or an incident", cmdEvidence},
		{"healthcheck", "GET /healthz (or --url) of a running otpprobe; exit 0 when it answers 2xx (container health checks)", cmdHealthcheck},
		{"version", "print the version, VCS revision and Go version (also --version)", cmdVersion},
		{"inspect", "print the verdicts in a message's headers (Authentication-Results, ARC, spam, DSN) as JSON", cmdInspect},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		return cmdVersion(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "otpprobe: unknown command %q (otpprobe help lists them)\n", args[0])
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: otpprobe COMMAND [flags]")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\n'otpprobe COMMAND -h' shows a command's flags.")
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("otpprobe "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args; it returns an exit code and false when the
// command must stop (help requested or bad flags).
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	return 0, true
}

// parseFlagsOnly is parseFlags for a command that takes no arguments: a
// leftover word (a forgotten --config, a misspelt flag value) is an error,
// not silently ignored.
func parseFlagsOnly(fs *flag.FlagSet, args []string, stderr io.Writer) (int, bool) {
	if code, ok := parseFlags(fs, args); !ok {
		return code, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitUsage, false
	}
	return 0, true
}
