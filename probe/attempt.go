// Package probe is the engine: it schedules probes, composes canaries, sends
// them over SMTP, watches the seed mailboxes over IMAP, matches arrivals to
// attempts and decides each attempt's outcome.
package probe

import (
	"time"

	"github.com/otpprobe/otpprobe/verify"
)

// Outcome is where an attempt ended.
type Outcome string

const (
	OutcomePending    Outcome = "pending"     // stored, not decided yet
	OutcomeInbox      Outcome = "inbox"       // seen in the inbox
	OutcomeSpam       Outcome = "spam"        // seen in the junk folder
	OutcomeBounced    Outcome = "bounced"     // a DSN for it arrived
	OutcomeSendFailed Outcome = "send_failed" // the submission failed
	OutcomeLost       Outcome = "lost"        // accepted, not seen before the deadline
)

// Final reports whether the outcome is decided.
func (o Outcome) Final() bool { return o != OutcomePending && o != "" }

// SMTPResult is what the submission server said.
type SMTPResult struct {
	Stage    string `json:"stage"`    // dial, tls, auth, mail, rcpt, data, quit; "" on success
	Code     int    `json:"code"`     // last SMTP reply code (250 on success)
	Enhanced string `json:"enhanced"` // e.g. "5.7.1"
	Reply    string `json:"reply"`    // reply text; on success the queue ID line
}

// Attempt is one canary from one sender to one mailbox.
type Attempt struct {
	ID         string        // sortable (UUIDv7)
	Probe      string        //
	Sender     string        //
	Mailbox    string        //
	Provider   string        //
	Token      string        // random, in X-Otpprobe-Id and the Subject
	Code       string        // the 6-digit OTP code in the body
	MessageID  string        // <ID@sender-domain>, without brackets
	CreatedAt  time.Time     // stored pending at
	Deadline   time.Time     // lost after
	LatencySLO time.Duration // late after SubmittedAt+LatencySLO

	Outcome      Outcome
	Late         bool
	SubmittedAt  time.Time // final 250 after DATA
	SeenAt       time.Time // watcher saw it
	Folder       string    // mailbox folder it was found in
	InternalDate time.Time
	// ReceivedAt is the provider's topmost Received timestamp (transit end).
	ReceivedAt time.Time

	SMTP       SMTPResult
	Transcript string // SMTP transcript, AUTH redacted
	Header     string // the full header block as fetched, kept for evidence
	// Body is the canary's text as fetched, for enrichers (the DKIM
	// re-check) only: it is not stored, and empty after a restart.
	Body string

	Verdicts  verify.Verdicts
	Diagnosis string
	// Detail holds structured evidence added by later stages (DSN, spam
	// signals, DKIM re-check) as JSON; empty when none.
	Detail string
}

// Latency is SeenAt − SubmittedAt: what a user waiting for a code feels.
func (a *Attempt) Latency() time.Duration {
	if a.SeenAt.IsZero() || a.SubmittedAt.IsZero() {
		return 0
	}
	return a.SeenAt.Sub(a.SubmittedAt)
}
