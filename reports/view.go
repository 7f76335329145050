// Package reports is what happens to results: the attempt history (store),
// metrics, SLOs, alerts, failover and the HTTP API.
package reports

import (
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/verify"
)

// AttemptJSON is the public JSON form of an attempt (a contract: `otpprobe
// once --format json` and the HTTP API print it). Unknown values are empty
// strings or zero, never null.
type AttemptJSON struct {
	ID          string       `json:"id"`
	RoundID     string       `json:"round_id"`
	Agent       string       `json:"agent"` // the agent that probed; "" before attempts recorded it
	Probe       string       `json:"probe"`
	Sender      string       `json:"sender"`
	Mailbox     string       `json:"mailbox"`
	Provider    string       `json:"provider"`
	Outcome     string       `json:"outcome"`
	Late        bool         `json:"late"`
	SubmittedAt string       `json:"submitted_at"`
	SeenAt      string       `json:"seen_at"`
	LatencyMS   int64        `json:"latency_ms"`
	Folder      string       `json:"folder"`
	SMTP        SMTPJSON     `json:"smtp"`
	Verdicts    VerdictsJSON `json:"verdicts"`
	Diagnosis   string       `json:"diagnosis"`
}

// SMTPJSON is the submission result.
type SMTPJSON struct {
	Stage    string `json:"stage"`
	Code     int    `json:"code"`
	Enhanced string `json:"enhanced"`
	Reply    string `json:"reply"`
}

// VerdictsJSON is the receiver's verdict summary.
type VerdictsJSON struct {
	Trusted    bool   `json:"trusted"`
	AuthservID string `json:"authserv_id"`
	SPF        string `json:"spf"`
	DKIM       string `json:"dkim"`
	DMARC      string `json:"dmarc"`
	ARC        string `json:"arc"`
	// DKIMRecheck is otpprobe's own verification of each signature, with
	// the selector that signed; [] when none was made.
	DKIMRecheck []verify.DKIMCheck `json:"dkim_recheck"`
}

// View returns the public form of a.
func View(a *attempt.Attempt) AttemptJSON {
	return AttemptJSON{
		ID: a.ID, RoundID: a.RoundID, Agent: a.Agent, Probe: a.Probe, Sender: a.Sender, Mailbox: a.Mailbox, Provider: a.Provider,
		Outcome: string(a.Outcome), Late: a.Late,
		SubmittedAt: timeJSON(a.SubmittedAt), SeenAt: timeJSON(a.SeenAt),
		LatencyMS: a.Latency().Milliseconds(), Folder: a.Folder,
		SMTP: SMTPJSON{Stage: a.SMTP.Stage, Code: a.SMTP.Code, Enhanced: a.SMTP.Enhanced, Reply: a.SMTP.Reply},
		Verdicts: VerdictsJSON{Trusted: a.Verdicts.Trusted, AuthservID: a.Verdicts.AuthservID,
			SPF: a.Verdicts.SPF, DKIM: a.Verdicts.DKIM, DMARC: a.Verdicts.DMARC, ARC: a.Verdicts.ARC,
			DKIMRecheck: append([]verify.DKIMCheck{}, a.Verdicts.DKIMRecheck...)},
		Diagnosis: a.Diagnosis,
	}
}

// timeJSON is RFC 3339 UTC with milliseconds, or "" for the zero time.
func timeJSON(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// Healthy reports whether an attempt counts as healthy for `once`: in the
// inbox and not late.
func Healthy(a *attempt.Attempt) bool { return a.Outcome == attempt.OutcomeInbox && !a.Late }
