// Package rounds groups finished attempts into probe rounds: one run of a
// probe sends one canary per sender × mailbox, and failover and alerts
// decide on a sender's whole round ("unhealthy at 2 of 3 providers"), not
// on single messages. Attempts finish out of order (a lost one at its
// deadline), so rounds are assembled as their attempts finish and handed
// on in the order they started.
// Attempts belong to the round whose ID they carry (attempt.Attempt.RoundID):
// rounds are never guessed back from timestamps.
package rounds

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/reports"
)

// Round is the decided attempts of one sender in one run of a probe.
type Round struct {
	ID        string // the engine's round (attempt.Round.ID)
	Probe     string
	Sender    string
	Start     time.Time          // CreatedAt of its first attempt
	Attempts  []*attempt.Attempt // decided attempts, oldest first
	Providers []string           // the providers the probe reaches, sorted
	// Partial is set when the round was handed on before all its attempts
	// were decided (they never were: e.g. the prober restarted mid-round).
	Partial bool
}

// Unhealthy lists the providers where at least one attempt of the round was
// not healthy (reports.Healthy: in the inbox within the latency SLO).
func (r Round) Unhealthy() []string {
	return r.providersWhere(func(a *attempt.Attempt) bool { return !reports.Healthy(a) })
}

// Undelivered lists the providers where at least one attempt did not reach
// the inbox at all (late arrivals count as delivered).
func (r Round) Undelivered() []string {
	return r.providersWhere(func(a *attempt.Attempt) bool { return a.Outcome != attempt.OutcomeInbox })
}

// Delivered reports whether any attempt of the round reached the inbox.
func (r Round) Delivered() bool {
	for _, a := range r.Attempts {
		if a.Outcome == attempt.OutcomeInbox {
			return true
		}
	}
	return false
}

func (r Round) providersWhere(bad func(*attempt.Attempt) bool) []string {
	var out []string
	for _, a := range r.Attempts {
		if p := a.ProviderKey(); bad(a) && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// Evidence is the IDs of the round's unhealthy attempts, or of all of them
// when every one was healthy.
func (r Round) Evidence() []string {
	var bad, all []string
	for _, a := range r.Attempts {
		all = append(all, a.ID)
		if !reports.Healthy(a) {
			bad = append(bad, a.ID)
		}
	}
	if len(bad) > 0 {
		return bad
	}
	return all
}

// Diagnosis says what went wrong in the round, one clause per unhealthy
// attempt: the attempt's own diagnosis when it has one, otherwise its
// outcome with the receiver's verdicts or the SMTP reply.
func (r Round) Diagnosis() string {
	var parts []string
	for _, a := range r.Attempts {
		if reports.Healthy(a) {
			continue
		}
		d := Describe(a)
		if !slices.Contains(parts, d) {
			parts = append(parts, d)
		}
	}
	return strings.Join(parts, "; ")
}

// Describe is one attempt's outcome in words, for alerts and decisions.
func Describe(a *attempt.Attempt) string {
	if a.Diagnosis != "" {
		return fmt.Sprintf("%s via %s: %s", a.ProviderKey(), a.Sender, a.Diagnosis)
	}
	s := fmt.Sprintf("%s via %s: %s", a.ProviderKey(), a.Sender, a.Outcome)
	if a.Outcome == attempt.OutcomeInbox && a.Late {
		s += fmt.Sprintf(" late (%v)", a.Latency().Round(time.Millisecond))
	}
	v := a.Verdicts
	if v.Trusted && (a.Outcome == attempt.OutcomeInbox || a.Outcome == attempt.OutcomeSpam) {
		s += fmt.Sprintf(" (spf=%s dkim=%s dmarc=%s)", orNone(v.SPF), orNone(v.DKIM), orNone(v.DMARC))
	}
	if a.Outcome == attempt.OutcomeSendFailed && a.SMTP.Reply != "" {
		reply := a.SMTP.Reply
		if len(reply) > 160 {
			reply = reply[:160] + "…"
		}
		s += fmt.Sprintf(" at %s: %s", a.SMTP.Stage, strings.Join(strings.Fields(reply), " "))
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
