// Package alert turns delivery problems into notifications: alerts that
// fire and resolve (deduplicated by their labels), route transitions, each
// queued in the store's outbox in the same transaction as the change it
// reports and delivered with retries and backoff, so a restart loses
// nothing. Notifiers: a signed JSON webhook and Prometheus Alertmanager.
package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
	"time"
)

// Alert names.
const (
	SenderDown        = "OTPSenderDown"            // a sender failed at every provider
	ProviderSpam      = "OTPProviderSpam"          // a provider puts a sender's mail in spam
	VerdictRegression = "OTPAuthVerdictRegression" // spf, dkim or dmarc no longer pass
	SLOBurn           = "OTPDeliverySLOBurn"       // an SLO burns its error budget too fast
	RouteFailedOver   = "OTPRouteFailedOver"       // a route sends through a backup
	DNSChanged        = "OTPDNSRecordChanged"      // a sender's mail DNS record changed
	DNSCritical       = "OTPDNSCriticalFinding"    // a critical DNS posture finding
	// CredentialsRefused: a seed or bounce mailbox's IMAP server (or its
	// token endpoint) refuses the prober's credentials; its watchers back
	// off and nothing arriving there is seen.
	CredentialsRefused = "OTPCredentialsRefused"
)

// Names are every alert the prober's own notifier sends. Prometheus rules
// (configs/prometheus) never use them: each alert has one source, so one
// problem pages once (TestAlertSources).
var Names = []string{SenderDown, ProviderSpam, VerdictRegression, SLOBurn, RouteFailedOver, DNSChanged, DNSCritical, CredentialsRefused}

// RunbookBase is where every alert's runbook section is: RunbookBase +
// the lower-cased alert name (docs/runbook.md's headings).
const RunbookBase = "https://github.com/otpprobe/otpprobe/blob/main/docs/runbook.md#"

// RunbookURL is the runbook section of the alert named name.
func RunbookURL(name string) string { return RunbookBase + strings.ToLower(name) }

// Statuses.
const (
	Firing   = "firing"
	Resolved = "resolved"
)

// Alert is one condition. Name and Labels identify it: firing an alert
// that already fires only refreshes its evidence.
type Alert struct {
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels"`    // e.g. sender, provider; severity page|ticket|info
	Summary   string            `json:"summary"`   // one line for a human
	Diagnosis string            `json:"diagnosis"` // what is wrong, naming the record or verdict when known
	Evidence  []string          `json:"evidence"`  // attempt IDs
	Status    string            `json:"status"`
	StartsAt  time.Time         `json:"starts_at"`
	EndsAt    time.Time         `json:"ends_at,omitzero"` // absent while firing
}

// Key is the alert's fingerprint: a hash of its name and labels.
func (a Alert) Key() string { return Key(a.Name, a.Labels) }

// Key fingerprints an alert name and its labels.
func Key(name string, labels map[string]string) string {
	h := sha256.New()
	h.Write([]byte(name))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		h.Write([]byte{0})
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write([]byte(labels[k]))
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Event is what the JSON webhook receives for an alert; a route
// transition is sent as failover.Transition, whose type field tells them
// apart.
type Event struct {
	Type  string `json:"type"` // "alert" or "route_transition"
	Agent string `json:"agent"`
	Alert *Alert `json:"alert,omitempty"`
}

// describe is "name{k=v,...}" for logs.
func describe(name string, labels map[string]string) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	for i, k := range slices.Sorted(maps.Keys(labels)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + labels[k])
	}
	b.WriteByte('}')
	return b.String()
}
