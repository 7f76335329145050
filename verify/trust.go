package verify

import (
	"bufio"
	"io"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// TrustNoID is the configured authserv-id meaning "the receiver writes
// no authserv-id" (Microsoft 365 / Outlook.com): the topmost
// Authentication-Results without one is trusted.
const TrustNoID = "none"

// HeaderResults is one Authentication-Results header of a message, with
// whether it is trusted.
type HeaderResults struct {
	AuthResults
	Trusted bool   `json:"trusted"`
	Index   int    `json:"index"` // 0 = topmost Authentication-Results
	Error   string `json:"error,omitempty"`
}

// Evaluation is every Authentication-Results header of a message, top to
// bottom, and the one trusted for the configured authserv-id.
type Evaluation struct {
	Headers []HeaderResults `json:"headers"`
	// Trusted indexes Headers; -1 when no header is trusted.
	Trusted int `json:"trusted"`
}

// TrustedHeader returns the trusted header, if any.
func (e Evaluation) TrustedHeader() (HeaderResults, bool) {
	if e.Trusted < 0 || e.Trusted >= len(e.Headers) {
		return HeaderResults{}, false
	}
	return e.Headers[e.Trusted], true
}

// Evaluate applies RFC 8601 §5: only a header whose authserv-id equals
// trustedID (case-insensitively) can be trusted, and of those only the
// topmost, because the receiver prepends its own header and anything
// below it may have been written by the sender. trustedID TrustNoID
// trusts the topmost header without an authserv-id; "" trusts nothing.
func Evaluate(h textproto.Header, trustedID string) Evaluation {
	values := h.Values("Authentication-Results")
	ev := Evaluation{Headers: make([]HeaderResults, 0, len(values)), Trusted: -1}
	want := strings.TrimSpace(trustedID)
	for i, v := range values {
		ar, err := ParseAuthResults(v)
		hr := HeaderResults{AuthResults: ar, Index: i}
		if err != nil {
			hr.Error = err.Error()
		}
		if ev.Trusted < 0 && want != "" && matchesID(ar.AuthservID, want) {
			hr.Trusted = true
			ev.Trusted = i
		}
		ev.Headers = append(ev.Headers, hr)
	}
	return ev
}

func matchesID(got, want string) bool {
	if strings.EqualFold(want, TrustNoID) {
		return got == ""
	}
	return strings.EqualFold(got, want)
}

// ReadHeader reads a header block (the part of a message before the
// first blank line; the rest of r is not read). Bare LF line ends are
// accepted, as IMAP servers and pasted text often use them.
func ReadHeader(r io.Reader) (textproto.Header, error) {
	return textproto.ReadHeader(bufio.NewReader(r))
}
