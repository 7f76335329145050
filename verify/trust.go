package verify

import (
	"bufio"
	"io"
	"sort"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// HeaderResults is one Authentication-Results header of a message, with
// whether it is trusted.
type HeaderResults struct {
	AuthResults
	Trusted bool   `json:"trusted"`
	Index   int    `json:"index"` // 0 = topmost Authentication-Results
	Error   string `json:"error,omitempty"`
}

// Evaluation is every Authentication-Results header of a message, top to
// bottom, and the receiver's trusted group among them.
type Evaluation struct {
	Headers []HeaderResults `json:"headers"`
	// Trusted indexes the topmost trusted header; -1 when none is.
	Trusted int `json:"trusted"`
	// Group indexes every header of the trusted group, top first.
	Group []int `json:"group,omitempty"`
}

// TrustedResults returns the trusted group's results merged: in header
// order, identical results folded, the authserv-id of its topmost header.
func (e Evaluation) TrustedResults() (AuthResults, bool) {
	if len(e.Group) == 0 {
		return AuthResults{}, false
	}
	top := e.Headers[e.Group[0]].AuthResults
	merged := AuthResults{AuthservID: top.AuthservID, Version: top.Version}
	seen := map[string]bool{}
	for _, i := range e.Group {
		for _, r := range e.Headers[i].Results {
			if k := resultKey(r); !seen[k] {
				seen[k] = true
				merged.Results = append(merged.Results, r)
			}
		}
	}
	return merged, true
}

// Evaluate finds the receiver's trusted group (RFC 8601 §5). trusted is a
// ParseAuthservIDs list; "" trusts nothing.
//
// Only headers whose authserv-id is in the set can be trusted. The group
// starts at the topmost of them, because a receiver prepends its own, and
// extends down over the headers with a trusted id that follow it
// directly: milter setups (OpenDKIM + OpenDMARC + OpenARC), Proton,
// kernel.org and iCloud write one header per method. It ends
//   - at the first header of any other id (a hop before the receiver);
//   - after a header that already gave the whole verdict (dmarc together
//     with spf or dkim): such receivers write one header, so a same-id
//     header below it is the sender's;
//   - before a header that contradicts the group: another result for a
//     method (spf, dmarc, arc) or DKIM signature the group already has.
//     Identical repeats (a filter run twice) are folded instead.
//
// Headers outside the group stay untrusted: the sender may have written
// them.
func Evaluate(h textproto.Header, trusted string) Evaluation {
	return evaluate(h, MustAuthservIDs(trusted))
}

func evaluate(h textproto.Header, ids AuthservIDs) Evaluation {
	values := h.Values("Authentication-Results")
	ev := Evaluation{Headers: make([]HeaderResults, 0, len(values)), Trusted: -1}
	open := true
	said := map[string]Result{} // subject → the group's result about it
	for i, v := range values {
		ar, err := ParseAuthResults(v)
		hr := HeaderResults{AuthResults: ar, Index: i}
		if err != nil {
			hr.Error = err.Error()
		}
		match := ids.Match(ar.AuthservID)
		switch {
		case !open:
		case ev.Trusted < 0:
			if match {
				ev.Trusted = i
				hr.Trusted = true
			}
		case !match || complete(ev.Headers[ev.Group[len(ev.Group)-1]].AuthResults) || contradicts(said, ar):
			open = false
		default:
			hr.Trusted = true
		}
		if hr.Trusted {
			ev.Group = append(ev.Group, i)
			for _, r := range ar.Results {
				if k, ok := subject(r); ok {
					if _, dup := said[k]; !dup {
						said[k] = r
					}
				}
			}
		}
		ev.Headers = append(ev.Headers, hr)
	}
	return ev
}

// complete reports a header that carries a whole verdict on its own.
func complete(a AuthResults) bool {
	var dmarc, other bool
	for _, r := range a.Results {
		dmarc = dmarc || r.Method == "dmarc"
		other = other || r.Method == "spf" || r.Method == "dkim"
	}
	return dmarc && other
}

// contradicts reports whether a says something else than the group did
// about a method or DKIM signature.
func contradicts(said map[string]Result, a AuthResults) bool {
	for _, r := range a.Results {
		if k, ok := subject(r); ok {
			if g, seen := said[k]; seen && !sameResult(g, r) {
				return true
			}
		}
	}
	return false
}

// subject is what a result is about, for the methods a receiver reports
// once per message (and DKIM once per signature); ok false for the rest.
func subject(r Result) (string, bool) {
	switch r.Method {
	case "spf", "dmarc", "arc":
		return r.Method, true
	case "dkim":
		if b := r.Prop("header.b"); b != "" {
			return "dkim b=" + b, true
		}
		return "dkim " + DKIMDomain(r) + " s=" + r.Prop("header.s"), true
	}
	return "", false
}

func sameResult(a, b Result) bool {
	if a.Method != b.Method || a.Result != b.Result || a.Reason != b.Reason || len(a.Props) != len(b.Props) {
		return false
	}
	for k, v := range a.Props {
		if w, ok := b.Props[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// resultKey identifies a result up to its comment: two headers saying
// the same thing fold into one result.
func resultKey(r Result) string {
	keys := make([]string, 0, len(r.Props))
	for k := range r.Props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(r.Method + "\x00" + r.Result + "\x00" + r.Reason)
	for _, k := range keys {
		b.WriteString("\x00" + k + "=" + r.Props[k])
	}
	return b.String()
}

// ReadHeader reads a header block (the part of a message before the
// first blank line; the rest of r is not read). Bare LF line ends are
// accepted, as IMAP servers and pasted text often use them.
func ReadHeader(r io.Reader) (textproto.Header, error) {
	return textproto.ReadHeader(bufio.NewReader(r))
}
