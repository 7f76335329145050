package main

import (
	"context"
	"fmt"
	"time"

	"github.com/otpprobe/otpprobe/probe"
	"github.com/otpprobe/otpprobe/reports/health"
	"github.com/otpprobe/otpprobe/reports/metrics"
)

// readyBudget is how long a watcher may be without its connection before
// the prober counts as not ready: longer than a reconnect's backoff (30 s
// at most), so a blip does not flap /readyz.
var readyBudget = 45 * time.Second

// schedulerGrace is how far past its time a scheduled run may be before
// the scheduler counts as stopped: the largest jitter and then some.
const schedulerGrace = time.Minute

// watcherProblems reports the watchers without a connection for longer
// than budget (counting from started for one that never had one).
func watcherProblems(e *probe.Engine, started time.Time, budget time.Duration) health.Check {
	return func(now time.Time) []health.Problem {
		var out []health.Problem
		for _, st := range e.Watchers() {
			if st.Connected {
				continue
			}
			since := st.Since
			if since.IsZero() || since.Before(started) {
				since = started
			}
			if now.Sub(since) <= budget {
				continue
			}
			reason := st.LastError
			if reason == "" {
				reason = "not connected"
			}
			if st.LoginRefused {
				reason = fmt.Sprintf("auth: login refused %d time(s) in a row, next try at %s: %s",
					st.LoginRefusals, st.RetryAt.UTC().Format(time.TimeOnly), reason)
			}
			out = append(out, health.Problem{Component: "watcher", Name: st.Mailbox + "/" + st.Label, Reason: reason, Since: since})
		}
		return out
	}
}

// storeProblems reports a store that refused the engine's last write.
func storeProblems(e *probe.Engine) health.Check {
	return func(time.Time) []health.Problem {
		down, since, reason := e.StoreDown()
		if !down {
			return nil
		}
		return []health.Problem{{Component: "store", Name: "attempts", Reason: reason, Since: since}}
	}
}

// schedulerProblems reports probes the scheduler stopped running.
func schedulerProblems(s *probe.Scheduler) health.Check {
	return func(now time.Time) []health.Problem {
		var out []health.Problem
		for _, name := range s.Stalled(now, schedulerGrace) {
			out = append(out, health.Problem{Component: "scheduler", Name: name, Reason: "scheduled run overdue by more than " + schedulerGrace.String()})
		}
		return out
	}
}

// publishWatchers copies the watchers' state into the metrics every
// second until ctx ends (and once at once, so every watcher's series
// exists from the start).
func publishWatchers(ctx context.Context, e *probe.Engine, m *metrics.Metrics) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		for _, st := range e.Watchers() {
			m.SetWatcher(st.Mailbox, st.Label, st.Connected, st.LastPoll)
			m.SetWatcherLoginRefused(st.Mailbox, st.Label, st.LoginRefused)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
