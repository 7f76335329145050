package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/otpprobe/otpprobe/reports/evidence"
	"github.com/otpprobe/otpprobe/reports/store"
)

const evidenceUsage = `usage:
  otpprobe evidence --config FILE ID [ID…] -o PATH
  otpprobe evidence --config FILE --route R --since T [--until T] -o PATH
  otpprobe evidence --config FILE --incident N -o PATH

PATH ending in .zip (or any file name) gets a zip; PATH ending in / a directory.
T is an RFC 3339 time or a duration back from now (90m, 24h, 7d).`

// cmdEvidence writes an evidence bundle, as GET /api/v1/evidence does.
func cmdEvidence(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("evidence", stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, evidenceUsage) }
	path := fs.String("config", "", "config file (required)")
	out := fs.String("o", "", "output: a .zip file, or a directory when it ends in /")
	route := fs.String("route", "", "the attempts of this route's senders")
	sender := fs.String("sender", "", "the attempts of this sender")
	since := fs.String("since", "", "with --route/--sender: from")
	until := fs.String("until", "", "with --route/--sender: to (default now)")
	incident := fs.Int64("incident", 0, "the attempts of incident N (otpprobe incidents lists them)")
	ids, code, ok := parseInterleaved(fs, args)
	if !ok {
		return code
	}
	if *out == "" {
		fmt.Fprintln(stderr, "otpprobe evidence: -o PATH is required\n"+evidenceUsage)
		return exitUsage
	}
	v := url.Values{"id": ids}
	for k, p := range map[string]string{"route": *route, "sender": *sender, "since": *since, "until": *until} {
		if p != "" {
			v.Set(k, p)
		}
	}
	if *incident != 0 {
		v.Set("incident", strconv.FormatInt(*incident, 10))
	}
	now := time.Now()
	sel, err := evidence.ParseSelection(v, now)
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe evidence: --%v\n", err)
		return exitUsage
	}
	cfg, code := loadConfig(*path, "evidence", stderr)
	if cfg == nil {
		return code
	}
	st, err := openStore(ctx, cfg.Store)
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe evidence: %v\n", err)
		return exitRuntime
	}
	defer st.Close()
	b, err := evidence.Build(ctx, st, cfg, sel, now)
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe evidence: %v\n", err)
		if errors.Is(err, evidence.ErrEmpty) || errors.Is(err, store.ErrNoIncident) {
			return exitFailed
		}
		return exitRuntime
	}
	if strings.HasSuffix(*out, "/") || strings.HasSuffix(*out, string(filepath.Separator)) {
		err = b.WriteDir(*out)
	} else {
		err = writeZipFile(*out, b)
	}
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe evidence: %v\n", err)
		return exitRuntime
	}
	fmt.Fprintf(stdout, "wrote %s: %d attempts, %d timeline events, %s → %s\n", *out, len(b.Attempts), len(b.Timeline),
		b.Summary.From.Format(time.RFC3339), b.Summary.To.Format(time.RFC3339))
	return exitOK
}

// writeZipFile writes the zip next to path and renames it into place, so
// a failed run leaves no half bundle.
func writeZipFile(path string, b *evidence.Bundle) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".evidence-*.zip")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := b.WriteZip(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
