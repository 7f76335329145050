// Package attempt is the result model every part of otpprobe shares: one
// canary's Attempt, its Outcome, the Round of a probe run that created it,
// and the Store that keeps them. The engine (probe) produces these values;
// reports and verify/diagnose consume them. It imports nothing of the
// engine, so readers of results never pull in SMTP, IMAP or cron code.
package attempt

import (
	"time"

	"github.com/otpprobe/otpprobe/verify"
)

// Outcome is where an attempt ended. This is the only place the names are
// spelled; the store, the API and the JSON output use them as they are.
type Outcome string

const (
	OutcomePending    Outcome = "pending"     // stored, not decided yet
	OutcomeInbox      Outcome = "inbox"       // seen in the inbox
	OutcomeSpam       Outcome = "spam"        // seen in the junk folder
	OutcomeBounced    Outcome = "bounced"     // a DSN for it arrived
	OutcomeSendFailed Outcome = "send_failed" // the submission failed
	OutcomeLost       Outcome = "lost"        // accepted, not seen before the deadline
)

// Outcomes lists every final outcome, in the order reports show them.
var Outcomes = []Outcome{OutcomeInbox, OutcomeSpam, OutcomeBounced, OutcomeLost, OutcomeSendFailed}

// Final reports whether the outcome is decided.
func (o Outcome) Final() bool { return o != OutcomePending && o != "" }

// Delivered reports whether the canary reached the mailbox (inbox or spam).
func (o Outcome) Delivered() bool { return o == OutcomeInbox || o == OutcomeSpam }

// Stages of SMTPResult that are not a submission command.
const (
	// StageBounce: a DSN reported the attempt failed after the submission.
	StageBounce = "bounce"
	// StageInterrupted: the prober stopped during the submission and the
	// canary never arrived.
	StageInterrupted = "interrupted"
)

// SMTPResult is what the submission server said (or, for a bounce, what
// the DSN said).
type SMTPResult struct {
	Stage    string `json:"stage"`    // dial, tls, auth, mail, rcpt, data, quit, bounce; "" on success
	Code     int    `json:"code"`     // last SMTP reply code (250 on success)
	Enhanced string `json:"enhanced"` // e.g. "5.7.1"
	Reply    string `json:"reply"`    // reply text; on success the queue ID line
}

// Attempt is one canary from one sender to one mailbox.
type Attempt struct {
	ID         string        // sortable (UUIDv7)
	RoundID    string        // the Round that created it; "" for attempts stored before rounds had IDs
	Agent      string        // the agent (config's agent) that created it; "" for attempts stored before attempts had one
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

// DeadlineAfter is how long after its creation the attempt counts as lost
// (0 when no deadline is known).
func (a *Attempt) DeadlineAfter() time.Duration {
	if a.Deadline.IsZero() || a.CreatedAt.IsZero() {
		return 0
	}
	return a.Deadline.Sub(a.CreatedAt)
}

// ProviderKey is the provider an attempt counts for in reports: its
// provider, or its mailbox for generic ones.
func (a *Attempt) ProviderKey() string {
	if a.Provider == "" || a.Provider == "generic" {
		return a.Mailbox
	}
	return a.Provider
}
