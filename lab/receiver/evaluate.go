package receiver

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/mail"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"
)

// Resolver is the DNS the receiver evaluates against: the four lookups
// blitiri/spf needs (*net.Resolver and verify/resolver.Resolver fit). Errors
// must be *net.DNSError with IsNotFound / IsTemporary set.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// Values written in Authentication-Results (RFC 8601 §2.7).
const (
	ValPass      = "pass"
	ValFail      = "fail"
	ValSoftFail  = "softfail"
	ValNeutral   = "neutral"
	ValNone      = "none"
	ValTempError = "temperror"
	ValPermError = "permerror"
)

// maxDKIMSignatures bounds the verifications per message (each may cost a
// DNS query), as receivers do against signature floods.
const maxDKIMSignatures = 5

// SPFResult is the RFC 7208 check of the MAIL FROM identity (or HELO for
// the null sender).
type SPFResult struct {
	Value  string // pass, fail, softfail, neutral, none, temperror, permerror
	Sender string // the checked identity: MAIL FROM, or postmaster@HELO
	Domain string // its domain, used for DMARC alignment
	Reason string // why (blitiri's explanation), for comments and logs
}

// DKIMResult is the verification of one DKIM-Signature, in header order.
type DKIMResult struct {
	Value      string // pass, fail, permerror, temperror
	Domain     string // d=
	Identifier string // i=, "@d" when absent
	Selector   string // s=
	B          string // the first 8 characters of b=, as Gmail shows it
	Reason     string // "no key for signature", "body hash did not verify", …
}

// DMARCResult is the RFC 7489 evaluation for the From domain.
type DMARCResult struct {
	Value      string       // pass, fail, none, temperror, permerror
	FromDomain string       // RFC5322.From domain
	Policy     dmarc.Policy // the policy that applies (p, or sp for a subdomain); empty without a record
	Record     *dmarc.Record
}

// Results are everything the receiver learned about one message.
type Results struct {
	ClientIP net.IP
	Helo     string
	MailFrom string
	SPF      SPFResult
	DKIM     []DKIMResult
	DMARC    DMARCResult
	ARC      ARCResult
}

// DKIMPass reports whether any signature passed.
func (r *Results) DKIMPass() bool {
	for _, d := range r.DKIM {
		if d.Value == ValPass {
			return true
		}
	}
	return false
}

// MessageError is a message the receiver refuses to evaluate at all
// (unparsable header, no single From address).
type MessageError struct {
	Reason string
	Header bool // the header itself does not parse
}

func (e *MessageError) Error() string { return "receiver: " + e.Reason }

// parseMessage parses the message header and returns it with the one
// From domain.
func parseMessage(msg []byte) (textproto.Header, string, error) {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(msg)))
	if err != nil {
		return textproto.Header{}, "", &MessageError{Reason: "message header is malformed", Header: true}
	}
	froms := h.Values("From")
	if len(froms) != 1 {
		return h, "", &MessageError{Reason: "message must have exactly one From header"}
	}
	addrs, err := mail.ParseAddressList(froms[0])
	if err != nil || len(addrs) != 1 {
		return h, "", &MessageError{Reason: "From header is not one valid address"}
	}
	_, domain, ok := strings.Cut(addrs[0].Address, "@")
	if !ok || domain == "" {
		return h, "", &MessageError{Reason: "From address has no domain"}
	}
	return h, strings.ToLower(strings.TrimSuffix(domain, ".")), nil
}

// evaluate runs SPF, DKIM and DMARC for one message against res.
func evaluate(ctx context.Context, res Resolver, ip net.IP, helo, mailFrom string, h textproto.Header, fromDomain string, msg []byte) *Results {
	r := &Results{ClientIP: ip, Helo: helo, MailFrom: mailFrom}
	r.SPF = checkSPF(ctx, res, ip, helo, mailFrom)
	r.DKIM = checkDKIM(ctx, res, h, msg)
	r.DMARC = checkDMARC(ctx, res, fromDomain, r)
	r.ARC = checkARC(ctx, res, h, msg)
	return r
}

func checkSPF(ctx context.Context, res Resolver, ip net.IP, helo, mailFrom string) SPFResult {
	sender := mailFrom
	if sender == "" {
		sender = "postmaster@" + helo // RFC 7208 §2.4
	}
	_, domain, _ := strings.Cut(sender, "@")
	out := SPFResult{Sender: sender, Domain: strings.ToLower(domain)}
	result, err := spf.CheckHostWithSender(ip, helo, sender, spf.WithResolver(res), spf.WithContext(ctx))
	if err != nil {
		out.Reason = err.Error()
	}
	switch result {
	case spf.Pass:
		out.Value = ValPass
	case spf.Fail:
		out.Value = ValFail
	case spf.SoftFail:
		out.Value = ValSoftFail
	case spf.Neutral:
		out.Value = ValNeutral
	case spf.TempError:
		out.Value = ValTempError
	case spf.PermError:
		out.Value = ValPermError
	default:
		out.Value = ValNone
	}
	return out
}

func checkDKIM(ctx context.Context, res Resolver, h textproto.Header, msg []byte) []DKIMResult {
	sigs := h.Values("DKIM-Signature")
	if len(sigs) == 0 {
		return nil
	}
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{
		LookupTXT:        func(name string) ([]string, error) { return res.LookupTXT(ctx, name) },
		MaxVerifications: maxDKIMSignatures,
	})
	var out []DKIMResult
	for i, sig := range sigs {
		if i >= maxDKIMSignatures {
			break
		}
		tags := parseTags(sig)
		d := DKIMResult{Domain: strings.ToLower(tags["d"]), Identifier: tags["i"], Selector: tags["s"], B: tags["b"]}
		if len(d.B) > 8 {
			d.B = d.B[:8]
		}
		if d.Identifier == "" && d.Domain != "" {
			d.Identifier = "@" + d.Domain
		}
		switch {
		case i < len(verifs):
			if verifs[i].Domain != "" {
				d.Domain = strings.ToLower(verifs[i].Domain)
			}
			d.Value, d.Reason = classifyDKIM(verifs[i].Err)
		case err != nil:
			// go-msgauth gave up on the whole message (e.g. a header it
			// cannot read): nothing verified, and the signature is broken.
			d.Value, d.Reason = ValPermError, dkimReason(err)
		default:
			d.Value, d.Reason = ValPermError, "signature not verified"
		}
		out = append(out, d)
	}
	// An error beside the verifications (go-msgauth returns one for an
	// unexpected failure and clears that signature's Err) makes the
	// signatures it could not judge permerror rather than pass.
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		for i := range out {
			if i < len(verifs) && verifs[i].Err == nil && out[i].Value == ValPass {
				out[i].Value, out[i].Reason = ValPermError, dkimReason(err)
			}
		}
	}
	return out
}

func classifyDKIM(err error) (value, reason string) {
	switch {
	case err == nil:
		return ValPass, ""
	case dkim.IsTempFail(err):
		return ValTempError, dkimReason(err)
	case dkim.IsPermFail(err):
		return ValPermError, dkimReason(err)
	default:
		return ValFail, dkimReason(err)
	}
}

// dkimReason shortens go-msgauth's error to the phrase receivers print:
// "dkim: no key for signature: lookup …: no such host" → "no key for signature".
func dkimReason(err error) string {
	s := strings.TrimPrefix(err.Error(), "dkim: ")
	if i := strings.Index(s, ":"); i > 0 {
		s = s[:i]
	}
	return s
}

// parseTags reads a DKIM tag=value list; whitespace is not significant.
func parseTags(v string) map[string]string {
	tags := map[string]string{}
	for _, part := range strings.Split(v, ";") {
		k, val, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		tags[strings.TrimSpace(k)] = strings.Join(strings.Fields(val), "")
	}
	return tags
}

func checkDMARC(ctx context.Context, res Resolver, fromDomain string, r *Results) DMARCResult {
	out := DMARCResult{FromDomain: fromDomain}
	lookup := &dmarc.LookupOptions{LookupTXT: func(name string) ([]string, error) { return res.LookupTXT(ctx, name) }}
	rec, err := dmarc.LookupWithOptions(fromDomain, lookup)
	subdomain := false
	if errors.Is(err, dmarc.ErrNoPolicy) {
		// RFC 7489 §6.6.3: fall back to the organizational domain.
		if org := orgDomain(fromDomain); org != fromDomain {
			rec, err = dmarc.LookupWithOptions(org, lookup)
			subdomain = true
		}
	}
	switch {
	case errors.Is(err, dmarc.ErrNoPolicy):
		out.Value = ValNone
		return out
	case dmarc.IsTempFail(err):
		out.Value = ValTempError
		return out
	case err != nil:
		out.Value = ValPermError
		return out
	}
	out.Record = rec
	out.Policy = rec.Policy
	if subdomain && rec.SubdomainPolicy != "" {
		out.Policy = rec.SubdomainPolicy
	}

	spfAligned := aligned(r.SPF.Domain, fromDomain, rec.SPFAlignment)
	temp := false
	if spfAligned {
		if r.SPF.Value == ValPass {
			out.Value = ValPass
			return out
		}
		temp = r.SPF.Value == ValTempError
	}
	for _, d := range r.DKIM {
		if !aligned(d.Domain, fromDomain, rec.DKIMAlignment) {
			continue
		}
		if d.Value == ValPass {
			out.Value = ValPass
			return out
		}
		temp = temp || d.Value == ValTempError
	}
	if temp {
		out.Value = ValTempError
	} else {
		out.Value = ValFail
	}
	return out
}

// aligned applies DMARC identifier alignment (RFC 7489 §3.1).
func aligned(id, from string, mode dmarc.AlignmentMode) bool {
	id = strings.ToLower(strings.TrimSuffix(id, "."))
	if id == "" {
		return false
	}
	if mode == dmarc.AlignmentStrict {
		return id == from
	}
	return orgDomain(id) == orgDomain(from)
}

// orgDomain is the organizational domain (public suffix + 1 label).
func orgDomain(d string) string {
	org, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return org
}
