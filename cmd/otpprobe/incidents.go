package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/otpprobe/otpprobe/reports/incidents"
)

// cmdIncidents lists the stored incidents with the query the API's
// GET /api/v1/incidents runs.
func cmdIncidents(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("incidents", stderr)
	path := fs.String("config", "", "config file (required)")
	format := fs.String("format", "table", "table or json")
	open := fs.Bool("open", false, "only incidents not resolved yet")
	sender := fs.String("sender", "", "only this sender's")
	since := fs.String("since", "", "started or still open since (RFC 3339, or back from now: 24h, 7d)")
	limit := fs.String("limit", "", "at most this many (default 100)")
	if code, ok := parseFlagsOnly(fs, args, stderr); !ok {
		return code
	}
	if *format != "table" && *format != "json" {
		fmt.Fprintf(stderr, "otpprobe incidents: --format must be table or json, got %q\n", *format)
		return exitUsage
	}
	v := url.Values{}
	for k, p := range map[string]string{"sender": *sender, "since": *since, "limit": *limit} {
		if p != "" {
			v.Set(k, p)
		}
	}
	if *open {
		v.Set("open", "true")
	}
	now := time.Now()
	q, err := incidents.ParseQuery(v, now)
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe incidents: --%v\n", err)
		return exitUsage
	}
	cfg, code := loadConfig(*path, "incidents", stderr)
	if cfg == nil {
		return code
	}
	st, err := openStore(ctx, cfg.Store)
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe incidents: %v\n", err)
		return exitRuntime
	}
	defer st.Close()
	js, err := incidents.List(ctx, st, q, now)
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe incidents: %v\n", err)
		return exitRuntime
	}
	if *format == "json" {
		err = writeIndentedJSON(stdout, js)
	} else {
		err = incidents.WriteTable(stdout, js)
	}
	if err != nil {
		return exitRuntime
	}
	return exitOK
}
