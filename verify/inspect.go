package verify

import (
	"bytes"
	"context"
	"fmt"
	"strings"
)

// Inspection is what `otpprobe inspect` prints for one message or header
// block: every Authentication-Results header, the ARC chain, spam
// signals, the summary, the DSN when it is a bounce, and every problem
// met on the way. Field names are a contract (postmortem tooling).
type Inspection struct {
	AuthenticationResults []InspectedHeader `json:"authentication_results"`
	ARC                   InspectedARC      `json:"arc"`
	SpamSignals           SpamSignals       `json:"spam_signals"`
	Summary               InspectedSummary  `json:"summary"`
	DSN                   *DSN              `json:"dsn"`
	// DKIMRecheck is set only when a resolver was given.
	DKIMRecheck []DKIMCheck `json:"dkim_recheck,omitempty"`
	Errors      []string    `json:"errors"`
}

// InspectedHeader is one Authentication-Results header, top first.
type InspectedHeader struct {
	AuthservID string            `json:"authserv_id"`
	Trusted    bool              `json:"trusted"`
	Results    []InspectedResult `json:"results"`
}

// InspectedResult is one method's result with every property.
type InspectedResult struct {
	Method  string            `json:"method"`
	Result  string            `json:"result"`
	Reason  string            `json:"reason"`
	Props   map[string]string `json:"props"`
	Comment string            `json:"comment"`
}

// InspectedARC is the chain's state. Verified tells whether cv and valid
// include the signature checks (a resolver was given) or only the
// structure.
type InspectedARC struct {
	Instances int    `json:"instances"`
	CV        string `json:"cv"`
	Valid     bool   `json:"valid"`
	Verified  bool   `json:"verified"`
	Error     string `json:"error"`
}

// InspectedSummary are the one-word verdicts, as in the `once` output.
type InspectedSummary struct {
	SPF   string `json:"spf"`
	DKIM  string `json:"dkim"`
	DMARC string `json:"dmarc"`
	ARC   string `json:"arc"`
}

// InspectOptions configure Inspect.
type InspectOptions struct {
	// AuthservID is the receiver's authserv-id: only its headers are
	// trusted. Empty summarises the topmost header, trusting none.
	AuthservID string
	// Lookup, when set, enables DKIM re-verification and ARC signature
	// checks (the only network use).
	Lookup LookupTXT
}

// Inspect reads raw (a whole message, or a bare header block as pasted
// from a forwarded mail) and reports everything it can. It never fails:
// what cannot be read is listed in Errors and the rest is still reported.
func Inspect(ctx context.Context, raw []byte, o InspectOptions) Inspection {
	out := Inspection{AuthenticationResults: []InspectedHeader{}, Errors: []string{}}
	msg, problems := cleanMessage(raw)
	out.Errors = append(out.Errors, problems...)
	h, err := ReadHeader(bytes.NewReader(msg))
	if err != nil {
		out.Errors = append(out.Errors, "header: "+err.Error())
	}

	v := Summarize(h, o.AuthservID)
	ev := Evaluate(h, o.AuthservID)
	for _, hr := range ev.Headers {
		ih := InspectedHeader{AuthservID: hr.AuthservID, Trusted: hr.Trusted, Results: []InspectedResult{}}
		for _, r := range hr.Results {
			props := r.Props
			if props == nil {
				props = map[string]string{}
			}
			ih.Results = append(ih.Results, InspectedResult{Method: r.Method, Result: r.Result, Reason: r.Reason, Props: props, Comment: r.Comment})
		}
		out.AuthenticationResults = append(out.AuthenticationResults, ih)
	}
	out.Errors = append(out.Errors, v.Errors...)
	out.Summary = InspectedSummary{SPF: v.SPF, DKIM: v.DKIM, DMARC: v.DMARC, ARC: v.ARC}

	chain := ParseARC(h)
	if o.Lookup != nil && chain.Valid {
		chain = VerifyARC(ctx, ARCValidator{Lookup: o.Lookup}, bytes.NewReader(msg), chain)
	}
	out.ARC = InspectedARC{Instances: chain.Instances, CV: chain.CV, Valid: chain.Valid, Verified: chain.Verified, Error: chain.Error}
	for _, pe := range chain.ParseErrors {
		out.Errors = append(out.Errors, "ARC-Authentication-Results: "+pe)
	}

	out.SpamSignals = ParseSpamSignals(h)
	out.Errors = append(out.Errors, out.SpamSignals.Errors...)

	if IsDSN(h) {
		d, err := ParseDSN(bytes.NewReader(msg))
		if err != nil {
			out.Errors = append(out.Errors, err.Error())
		} else {
			out.DSN = d
			for _, e := range d.Errors {
				out.Errors = append(out.Errors, "dsn: "+e)
			}
		}
	}

	if o.Lookup != nil {
		if hasBody(msg) {
			out.DKIMRecheck = RecheckDKIM(ctx, o.Lookup, msg)
		} else {
			out.DKIMRecheck = RecheckDKIMHeader(ctx, o.Lookup, msg)
		}
	}
	return out
}

// cleanMessage makes pasted text readable as a message: a BOM, leading
// blank lines and a mail client's "> " quoting go; header lines that are
// neither fields nor continuations are dropped and reported, so one bad
// line does not hide the rest of the header.
func cleanMessage(raw []byte) ([]byte, []string) {
	var problems []string
	raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))
	text := strings.ReplaceAll(string(raw), "\r\n", "\n")
	text = strings.TrimLeft(text, "\n")
	lines := strings.Split(text, "\n")
	if quoted(lines) {
		for i, l := range lines {
			l = strings.TrimPrefix(l, ">")
			lines[i] = strings.TrimPrefix(l, " ")
		}
	}
	var out []string
	end := len(lines)
	for i, l := range lines {
		if l == "" {
			end = i
			break
		}
		switch {
		case (l[0] == ' ' || l[0] == '\t') && len(out) > 0:
		case isFieldLine(l):
		default:
			problems = append(problems, fmt.Sprintf("header line %d is not a field, skipped: %q", i+1, truncate(l, 60)))
			continue
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		problems = append(problems, "no header fields found")
	}
	msg := strings.Join(out, "\r\n") + "\r\n\r\n"
	if end < len(lines) {
		msg += strings.Join(lines[end+1:], "\r\n")
	}
	return []byte(msg), problems
}

// quoted reports whether every non-empty line of the header starts with
// ">" (a header block copied from a reply).
func quoted(lines []string) bool {
	n := 0
	for _, l := range lines {
		if l == "" {
			break
		}
		if !strings.HasPrefix(l, ">") {
			return false
		}
		n++
	}
	return n > 0
}

// isFieldLine reports "Name: …" with a name of printable ASCII but ':'
// (RFC 5322 §2.2).
func isFieldLine(l string) bool {
	i := strings.IndexByte(l, ':')
	if i <= 0 {
		return false
	}
	for j := 0; j < i; j++ {
		if c := l[j]; c <= ' ' || c > '~' {
			return j > 0 && strings.TrimRight(l[:i], " \t") == l[:j] // "Name :" (obs-optional)
		}
	}
	return true
}

func hasBody(msg []byte) bool {
	i := bytes.Index(msg, []byte("\r\n\r\n"))
	return i >= 0 && len(bytes.TrimSpace(msg[i+4:])) > 0
}
