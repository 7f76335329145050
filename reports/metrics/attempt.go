package metrics

import (
	"strings"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	finalOutcomes = []string{
		string(attempt.OutcomeInbox), string(attempt.OutcomeSpam), string(attempt.OutcomeBounced),
		string(attempt.OutcomeSendFailed), string(attempt.OutcomeLost),
	}
	authMethods = []string{"spf", "dkim", "dmarc", "arc"}
	// authResults are the RFC 8601 result words the verify package writes.
	authResults = []string{"pass", "fail", "softfail", "neutral", "none", "temperror", "permerror", "policy"}
)

// untrusted is the result of every method when no Authentication-Results
// header from the mailbox's configured authserv-id was found.
const untrusted = "untrusted"

// ObserveAttempt records a finished attempt: its outcome, lateness,
// latency, verdicts and timestamps. Call it once per attempt, when its
// outcome is final; pending attempts are ignored.
func (m *Metrics) ObserveAttempt(a *attempt.Attempt) {
	if a == nil || !a.Outcome.Final() {
		return
	}
	probeName := m.labels.value("probe", a.Probe)
	sender := m.labels.value("sender", a.Sender)
	provider := m.labels.value("provider", a.Provider)

	m.attempts.WithLabelValues(probeName, sender, provider, oneOf(string(a.Outcome), finalOutcomes...)).Inc()
	if a.Late {
		m.late.WithLabelValues(probeName, sender, provider).Inc()
	}
	if a.Outcome == attempt.OutcomeInbox || a.Outcome == attempt.OutcomeSpam {
		if !a.SeenAt.IsZero() && !a.SubmittedAt.IsZero() {
			m.latency.WithLabelValues(sender, provider, m.folder(a.Folder)).Observe(max(a.Latency().Seconds(), 0))
		}
		v := a.Verdicts
		for i, r := range []string{v.SPF, v.DKIM, v.DMARC, v.ARC} {
			result := untrusted
			if v.Trusted {
				result = oneOf(strings.ToLower(r), authResults...)
			}
			m.authResults.WithLabelValues(sender, provider, authMethods[i], result).Inc()
		}
	}

	m.finished(probeName, time.Now())
	created := float64(a.CreatedAt.UnixMilli()) / 1000
	m.setNewest(m.lastAttempt, "attempt", created, probeName, sender, provider)
	if a.Outcome == attempt.OutcomeInbox {
		m.setNewest(m.lastSuccess, "success", created, probeName, sender, provider)
	}
}

// folder is the label of an IMAP folder name; INBOX is case-insensitive
// (RFC 3501 §5.1).
func (m *Metrics) folder(name string) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	return m.labels.value("folder", name)
}

// setNewest sets a timestamp gauge unless it already holds a newer time:
// attempts finish out of order (a lost one is decided at its deadline).
func (m *Metrics) setNewest(g *prometheus.GaugeVec, name string, ts float64, probeName, sender, provider string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := [4]string{name, probeName, sender, provider}
	if prev, ok := m.lastTimestamps[key]; ok && prev >= ts {
		return
	}
	m.lastTimestamps[key] = ts
	g.WithLabelValues(probeName, sender, provider).Set(ts)
}

// InitSeries creates the attempt series of one probe × sender × provider
// at zero, so rates and alerts have a series from the first scrape on,
// before the first attempt finishes.
func (m *Metrics) InitSeries(probeName, sender, provider string) {
	probeName = m.labels.value("probe", probeName)
	sender = m.labels.value("sender", sender)
	provider = m.labels.value("provider", provider)
	for _, o := range finalOutcomes {
		m.attempts.WithLabelValues(probeName, sender, provider, o)
	}
	m.late.WithLabelValues(probeName, sender, provider)
}
