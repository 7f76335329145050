package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/reports/attempts"
	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
)

const attemptsUsage = `usage:
  otpprobe attempts --config FILE [--agent A] [--probe P] [--sender S] [--mailbox M] [--provider P]
                    [--outcome O] [--since T] [--until T] [--limit N] [--cursor C] [--format table|json]
  otpprobe attempts show ID --config FILE [--format text|json]

T is an RFC 3339 time or a duration back from now (90m, 24h, 7d). Newest first;
a full page ends with the cursor of the next one.`

// cmdAttempts lists and shows stored attempts with the query the API's
// GET /api/v1/attempts runs.
func cmdAttempts(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "show" {
		return cmdAttemptShow(ctx, args[1:], stdout, stderr)
	}
	fs := newFlagSet("attempts", stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, attemptsUsage) }
	path := fs.String("config", "", "config file (required)")
	format := fs.String("format", "table", "table or json")
	params := map[string]*string{}
	for _, p := range attempts.Params {
		params[p] = fs.String(p, "", "filter: "+p)
	}
	if code, ok := parseFlagsOnly(fs, args, stderr); !ok {
		return code
	}
	if *format != "table" && *format != "json" {
		fmt.Fprintf(stderr, "otpprobe attempts: --format must be table or json, got %q\n", *format)
		return exitUsage
	}
	v := url.Values{}
	for k, p := range params {
		if *p != "" {
			v.Set(k, *p)
		}
	}
	q, err := attempts.ParseQuery(v, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe attempts: --%v\n", err)
		return exitUsage
	}
	cfg, code := loadConfig(*path, "attempts", stderr)
	if cfg == nil {
		return code
	}
	src, closeStore, err := openHistory(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe attempts: %v\n", err)
		return exitRuntime
	}
	defer closeStore()
	page, err := src.Attempts(ctx, q)
	if errors.Is(err, store.ErrBadCursor) {
		fmt.Fprintln(stderr, "otpprobe attempts: --cursor: not one this command printed")
		return exitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe attempts: %v\n", err)
		return exitRuntime
	}
	if *format == "json" {
		err = writeIndentedJSON(stdout, attempts.PageOf(page.Attempts, page.Next))
	} else {
		err = attempts.WriteTable(stdout, page.Attempts, page.Next)
	}
	if err != nil {
		return exitRuntime
	}
	return exitOK
}

func cmdAttemptShow(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("attempts show", stderr)
	path := fs.String("config", "", "config file (required)")
	format := fs.String("format", "text", "text or json")
	pos, code, ok := parseInterleaved(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "otpprobe attempts show: want one attempt ID\n"+attemptsUsage)
		return exitUsage
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(stderr, "otpprobe attempts show: --format must be text or json, got %q\n", *format)
		return exitUsage
	}
	cfg, code := loadConfig(*path, "attempts show", stderr)
	if cfg == nil {
		return code
	}
	src, closeStore, err := openHistory(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe attempts show: %v\n", err)
		return exitRuntime
	}
	defer closeStore()
	a, err := src.Get(ctx, pos[0])
	if errors.Is(err, attempt.ErrNotFound) {
		fmt.Fprintf(stderr, "otpprobe attempts show: no attempt %q in the store\n", pos[0])
		return exitFailed
	}
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe attempts show: %v\n", err)
		return exitRuntime
	}
	if *format == "json" {
		err = writeIndentedJSON(stdout, attempts.DetailOf(a))
	} else {
		err = attempts.WriteText(stdout, a)
	}
	if err != nil {
		return exitRuntime
	}
	return exitOK
}

// openHistory opens the config's store for reading the history.
func openHistory(ctx context.Context, cfg *targets.Config) (attempts.Source, func(), error) {
	s, err := openStore(ctx, cfg.Store)
	if err != nil {
		return nil, nil, err
	}
	return s, func() { s.Close() }, nil
}
