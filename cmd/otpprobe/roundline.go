package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/reports/failover"
	"github.com/otpprobe/otpprobe/reports/rounds"
	"github.com/otpprobe/otpprobe/targets"
)

// roundLine is the lab console's line for a finished round: outcome
// counts, the slowest arrival and the state of the sender's routes.
func roundLine(cfg *targets.Config, r rounds.Round, decision func(string) (failover.Decision, bool)) string {
	counts := map[attempt.Outcome]int{}
	var slowest time.Duration
	late := 0
	for _, a := range r.Attempts {
		counts[a.Outcome]++
		slowest = max(slowest, a.Latency())
		if a.Late {
			late++
		}
	}
	var parts []string
	for _, o := range attempt.Outcomes {
		if n := counts[o]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", o, n))
		}
	}
	if late > 0 {
		parts = append(parts, fmt.Sprintf("late %d", late))
	}
	line := fmt.Sprintf("%s round %s/%s: %s", r.Start.UTC().Format("15:04:05"), r.Probe, r.Sender, strings.Join(parts, ", "))
	if slowest > 0 {
		line += fmt.Sprintf("; slowest %s", slowest.Round(time.Millisecond))
	}
	if r.Partial {
		line += " (partial)"
	}
	for _, rt := range cfg.Routes {
		d, ok := decision(rt.Name)
		if !ok || !slices.Contains(rt.Senders(), r.Sender) {
			continue
		}
		line += fmt.Sprintf("; route %s → %s (%s)", rt.Name, d.ActiveSender, d.State)
	}
	return line
}
