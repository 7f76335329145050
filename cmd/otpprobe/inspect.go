package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/otpprobe/otpprobe/verify"
	"github.com/otpprobe/otpprobe/verify/resolver"
)

// maxInspect bounds what inspect reads: far more than any header block or
// canary, small enough for a pasted mistake.
const maxInspect = 32 << 20

// cmdInspect prints what a message's headers say: postmortem use on mail
// a user forwarded. Odd input is reported in "errors" (exit 0); only input
// that cannot be read at all fails.
func cmdInspect(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return inspect(ctx, args, os.Stdin, stdout, stderr)
}

func inspect(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("inspect", stderr)
	var authservIDs idList
	fs.Var(&authservIDs, "authserv-id", "the receiver's authserv-`ID`: only its Authentication-Results are trusted; repeat it or separate ids with commas, *.example.com for any host under example.com, none for Microsoft (default: summarise the topmost, trust none)")
	resolverAddr := fs.String("resolver", "", "DNS server (ip[:port]) for DKIM re-verification and ARC signature checks")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: otpprobe inspect [--authserv-id ID[,ID…]]… [--resolver ADDR] FILE|-")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	rest := fs.Args()
	if len(rest) > 1 { // flags after the file name
		if code, ok := parseFlags(fs, rest[1:]); !ok {
			return code
		}
		rest = append(rest[:1], fs.Args()...)
	}
	if len(rest) != 1 {
		fmt.Fprintln(stderr, "otpprobe inspect: want one FILE (or - for standard input)")
		return exitUsage
	}
	var opts verify.InspectOptions
	opts.AuthservID = authservIDs.String()
	if *resolverAddr != "" {
		addr := *resolverAddr
		if _, _, err := net.SplitHostPort(addr); err != nil {
			addr = net.JoinHostPort(addr, "53")
		}
		r, err := resolver.New(resolver.Config{Servers: []string{addr}})
		if err != nil {
			fmt.Fprintf(stderr, "otpprobe inspect: --resolver %q: %v\n", *resolverAddr, err)
			return exitUsage
		}
		opts.Lookup = r.LookupTXT
	}

	in := stdin
	name := "standard input"
	if rest[0] != "-" {
		f, err := os.Open(rest[0])
		if err != nil {
			fmt.Fprintf(stderr, "otpprobe inspect: %v\n", err)
			return exitRuntime
		}
		defer f.Close()
		in, name = f, rest[0]
	}
	raw, err := io.ReadAll(io.LimitReader(in, maxInspect+1))
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe inspect: read %s: %v\n", name, err)
		return exitRuntime
	}
	truncated := len(raw) > maxInspect
	if truncated {
		raw = raw[:maxInspect]
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	report := verify.Inspect(ctx, raw, opts)
	if truncated {
		report.Errors = append(report.Errors, fmt.Sprintf("input larger than %d MiB, the rest was not read", maxInspect>>20))
	}
	if err := writeIndentedJSON(stdout, report); err != nil {
		fmt.Fprintf(stderr, "otpprobe inspect: %v\n", err)
		return exitRuntime
	}
	return exitOK
}

// idList is a repeatable --authserv-id; each value may itself be a
// comma-separated list, checked as the config's authserv_id is.
type idList []string

func (l *idList) String() string { return strings.Join(*l, ", ") }

func (l *idList) Set(v string) error {
	if _, err := verify.ParseAuthservIDs(v); err != nil {
		return err
	}
	*l = append(*l, v)
	return nil
}
