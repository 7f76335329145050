package verify

import (
	"net/mail"
	"strings"

	"github.com/emersion/go-message/textproto"
	"golang.org/x/net/publicsuffix"
)

// Summarize reads the verdicts a receiver wrote into a delivered
// message's header block. trustedID is the mailbox's configured
// authserv_id, a ParseAuthservIDs list (TrustNoID for Microsoft); the
// verdicts are merged over the receiver's trusted group (Evaluate). With
// "" nothing is trusted and the topmost header is summarised for
// inspection only (Trusted false); with ids that match no header the
// summaries stay "" (unknown) rather than repeating what the sender may
// have forged.
func Summarize(h textproto.Header, trustedID string) Verdicts {
	ev := Evaluate(h, trustedID)
	var v Verdicts
	ar, ok := ev.TrustedResults()
	switch {
	case ok:
		v.Trusted = true
	case strings.TrimSpace(trustedID) == "" && len(ev.Headers) > 0:
		ar, ok = ev.Headers[0].AuthResults, true
	}
	for _, x := range ev.Headers {
		if x.Error != "" {
			v.Errors = append(v.Errors, x.Error)
		}
		if !x.Trusted {
			v.Untrusted = append(v.Untrusted, x)
		}
	}
	if ok {
		v.fill(ar, h)
	}
	chain := ParseARC(h)
	if chain.Instances > 0 {
		v.ARCChain = &chain
	}
	if s := ParseSpamSignals(h); !s.Empty() {
		v.Spam = &s
	}
	return v
}

// fill sets the summaries from one header's results; h supplies the
// From domain when the results do not name it.
func (v *Verdicts) fill(a AuthResults, h textproto.Header) {
	v.AuthservID = a.AuthservID
	v.Results = a.Results
	v.SPF = firstResult(a, "spf")
	v.DMARC = firstResult(a, "dmarc")
	v.ARC = firstResult(a, "arc")
	v.DKIM = SummarizeDKIM(a, fromDomain(h, a))
}

func firstResult(a AuthResults, method string) string {
	for _, r := range a.Results {
		if r.Method == method {
			return Normalize(r.Result)
		}
	}
	return ""
}

// synonyms maps provider words to the RFC 8601 word they stand for.
// Words with no clear equivalent (Yahoo's "unknown", Microsoft's
// "bestguesspass") are kept as written.
var synonyms = map[string]string{
	"hardfail":  "fail",      // RFC 8601 §2.7.2, legacy Sender ID/SPF
	"perm_fail": "permerror", // Yahoo
	"temp_fail": "temperror", // Yahoo
}

// Normalize returns the RFC 8601 word for a result value.
func Normalize(result string) string {
	if n, ok := synonyms[result]; ok {
		return n
	}
	return result
}

// resultRank orders results from best to worst for one DKIM signature.
var resultRank = map[string]int{
	"pass": 0, "policy": 1, "neutral": 2, "temperror": 3, "permerror": 4,
	"softfail": 5, "fail": 6, "hardfail": 6, "none": 7,
}

func rank(result string) int {
	if r, ok := resultRank[result]; ok {
		return r
	}
	return 8
}

// SummarizeDKIM returns the best dkim result, looking first at the
// signatures aligned with fromDomain (relaxed, RFC 7489 §3.1.1) because
// those are the ones DMARC and users care about; an unaligned ESP
// signature that passes does not hide a failing author signature.
func SummarizeDKIM(a AuthResults, fromDomain string) string {
	best, bestAligned := "", ""
	for _, r := range a.Results {
		if r.Method != "dkim" {
			continue
		}
		res := Normalize(r.Result)
		if best == "" || rank(res) < rank(best) {
			best = res
		}
		if fromDomain != "" && Aligned(DKIMDomain(r), fromDomain) {
			if bestAligned == "" || rank(res) < rank(bestAligned) {
				bestAligned = res
			}
		}
	}
	if bestAligned != "" {
		return bestAligned
	}
	return best
}

// DKIMDomain is the signing domain of a dkim result: header.d, or the
// domain of header.i (Gmail writes only header.i=@example.com).
func DKIMDomain(r Result) string {
	if d := r.Prop("header.d"); d != "" && !strings.EqualFold(d, "none") {
		return strings.ToLower(d)
	}
	if i := r.Prop("header.i"); i != "" {
		return strings.ToLower(i[strings.LastIndexByte(i, '@')+1:])
	}
	return ""
}

// Aligned reports relaxed alignment: both domains share an organizational
// domain (public suffix + 1).
func Aligned(d, from string) bool {
	d, from = strings.TrimSuffix(strings.ToLower(d), "."), strings.TrimSuffix(strings.ToLower(from), ".")
	if d == "" || from == "" {
		return false
	}
	if d == from {
		return true
	}
	od, err1 := publicsuffix.EffectiveTLDPlusOne(d)
	of, err2 := publicsuffix.EffectiveTLDPlusOne(from)
	return err1 == nil && err2 == nil && od == of
}

// fromDomain is the RFC 5322.From domain: what DMARC evaluated when the
// receiver says so, else the From header.
func fromDomain(h textproto.Header, a AuthResults) string {
	for _, r := range a.Find("dmarc") {
		if f := r.Prop("header.from"); f != "" {
			return strings.ToLower(f[strings.LastIndexByte(f, '@')+1:])
		}
	}
	from := h.Get("From")
	if from == "" {
		return ""
	}
	if addr, err := mail.ParseAddress(from); err == nil {
		from = addr.Address
	}
	from = strings.TrimRight(strings.TrimSpace(from), ">")
	return strings.ToLower(from[strings.LastIndexByte(from, '@')+1:])
}
