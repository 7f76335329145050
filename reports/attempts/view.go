package attempts

import (
	"encoding/json"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/reports"
	"github.com/otpprobe/otpprobe/verify"
)

// Detail is the public JSON of one attempt with everything stored: the
// summary (reports.AttemptJSON) plus the timings split as a postmortem
// needs them, the SMTP transcript (AUTH already redacted when stored),
// the header block as fetched, the full verdicts and later stages'
// evidence.
type Detail struct {
	reports.AttemptJSON
	RoundID      string          `json:"round_id"`
	MessageID    string          `json:"message_id"`
	Token        string          `json:"token"`
	CreatedAt    string          `json:"created_at"`
	Deadline     string          `json:"deadline"`
	ReceivedAt   string          `json:"received_at"`
	InternalDate string          `json:"internal_date"`
	LatencySLOMS int64           `json:"latency_slo_ms"`
	Timings      Timings         `json:"timings"`
	Transcript   string          `json:"transcript"`
	Header       string          `json:"header"`
	AllVerdicts  verify.Verdicts `json:"verdicts_full"`
	Detail       json.RawMessage `json:"detail"`
}

// Timings split an attempt's life (DESIGN.md: latency = seen −
// submitted; transit = provider's top Received − submitted; detection =
// seen − top Received); 0 when a side is unknown.
type Timings struct {
	SubmissionMS int64 `json:"submission_ms"` // created (stored pending) → final 250
	TransitMS    int64 `json:"transit_ms"`
	DetectionMS  int64 `json:"detection_ms"`
	LatencyMS    int64 `json:"latency_ms"`
}

// TimingsOf returns a's timings.
func TimingsOf(a *attempt.Attempt) Timings {
	between := func(from, to time.Time) int64 {
		if from.IsZero() || to.IsZero() {
			return 0
		}
		return to.Sub(from).Milliseconds()
	}
	return Timings{
		SubmissionMS: between(a.CreatedAt, a.SubmittedAt),
		TransitMS:    between(a.SubmittedAt, a.ReceivedAt),
		DetectionMS:  between(a.ReceivedAt, a.SeenAt),
		LatencyMS:    a.Latency().Milliseconds(),
	}
}

// DetailOf returns the full public form of a.
func DetailOf(a *attempt.Attempt) Detail {
	d := Detail{
		AttemptJSON: reports.View(a),
		RoundID:     a.RoundID, MessageID: a.MessageID, Token: a.Token,
		CreatedAt: timeJSON(a.CreatedAt), Deadline: timeJSON(a.Deadline),
		ReceivedAt: timeJSON(a.ReceivedAt), InternalDate: timeJSON(a.InternalDate),
		LatencySLOMS: a.LatencySLO.Milliseconds(),
		Timings:      TimingsOf(a),
		Transcript:   a.Transcript, Header: a.Header, AllVerdicts: a.Verdicts,
		Detail: json.RawMessage("{}"),
	}
	if a.Detail != "" && json.Valid([]byte(a.Detail)) {
		d.Detail = json.RawMessage(a.Detail)
	}
	return d
}

// PageJSON is the API's and `otpprobe attempts --format json`'s page.
type PageJSON struct {
	Attempts   []reports.AttemptJSON `json:"attempts"`
	NextCursor string                `json:"next_cursor"`
}

// PageOf returns the public form of a page of attempts.
func PageOf(as []*attempt.Attempt, next string) PageJSON {
	out := PageJSON{Attempts: make([]reports.AttemptJSON, 0, len(as)), NextCursor: next}
	for _, a := range as {
		out.Attempts = append(out.Attempts, reports.View(a))
	}
	return out
}

func timeJSON(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}
