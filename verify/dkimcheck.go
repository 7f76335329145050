package verify

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// maxRecheck bounds the DKIM signatures re-verified per message.
const maxRecheck = 8

// DKIMCheck is our own verification of one DKIM-Signature, kept next to
// the receiver's verdict. The selector is what the diagnosis needs: which
// key is live.
type DKIMCheck struct {
	Domain   string `json:"domain"`   // d=
	Selector string `json:"selector"` // s=
	// Result is pass, fail, temperror or permerror (RFC 8601 words).
	Result string `json:"result"`
	// BodyChecked is false when only the header block was available: the
	// signature over the header fields (which include bh=) was checked,
	// the body hash could not be.
	BodyChecked bool   `json:"body_checked"`
	Error       string `json:"error,omitempty"`
}

// RecheckDKIM verifies every DKIM signature of a whole raw message with
// go-msgauth, fetching keys through lookup.
func RecheckDKIM(ctx context.Context, lookup LookupTXT, message []byte) []DKIMCheck {
	sigs := dkimSignatures(message)
	if len(sigs) == 0 {
		return nil
	}
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(message), &dkim.VerifyOptions{
		LookupTXT:        ctxLookup(ctx, lookup),
		MaxVerifications: maxRecheck,
	})
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		out := make([]DKIMCheck, len(sigs))
		for i, s := range sigs {
			out[i] = DKIMCheck{Domain: s["d"], Selector: s["s"], Result: "permerror", BodyChecked: true, Error: err.Error()}
		}
		return out
	}
	out := make([]DKIMCheck, 0, len(verifs))
	for i, v := range verifs {
		c := DKIMCheck{Domain: v.Domain, Result: dkimResult(v.Err), BodyChecked: true}
		if i < len(sigs) {
			c.Selector = sigs[i]["s"]
			if c.Domain == "" {
				c.Domain = sigs[i]["d"]
			}
		}
		if v.Err != nil {
			c.Error = v.Err.Error()
		}
		out = append(out, c)
	}
	return out
}

// RecheckDKIMHeader verifies the DKIM signatures of a header block alone
// (what the watcher keeps of a canary): the key named by s= and d= must
// exist and verify the signature over the signed fields. A changed body
// cannot be seen this way; BodyChecked is false.
func RecheckDKIMHeader(ctx context.Context, lookup LookupTXT, header []byte) []DKIMCheck {
	h, err := readRawHeader(bufio.NewReader(bytes.NewReader(header)))
	if err != nil && len(h) == 0 {
		return nil
	}
	var out []DKIMCheck
	for _, f := range h {
		if !strings.EqualFold(fieldName(f), "DKIM-Signature") {
			continue
		}
		if len(out) == maxRecheck {
			break
		}
		out = append(out, checkHeaderSignature(ctx, lookup, h, f))
	}
	return out
}

func checkHeaderSignature(ctx context.Context, lookup LookupTXT, h rawHeader, field string) DKIMCheck {
	tags, _ := ParseTagList(fieldValue(field))
	c := DKIMCheck{Domain: strings.ToLower(tags["d"]), Selector: strings.ToLower(tags["s"])}
	perm := func(format string, args ...any) DKIMCheck {
		c.Result, c.Error = "permerror", fmt.Sprintf(format, args...)
		return c
	}
	for _, t := range []string{"v", "a", "b", "bh", "d", "h", "s"} {
		if _, ok := tags[t]; !ok {
			return perm("signature has no %s= tag", t)
		}
	}
	if tags["v"] != "1" {
		return perm("signature has v=%s, want 1", tags["v"])
	}
	hc, _, err := parseCanon(tags["c"])
	if err != nil {
		return perm("%v", err)
	}
	names := strings.Split(tags["h"], ":")
	if !hasToken(tags["h"], "from") {
		return perm("From is not signed")
	}
	sig, err := decodeB64(tags["b"])
	if err != nil {
		return perm("b= is not base64: %v", err)
	}
	key, err := lookupKey(ctx, lookup, c.Selector, c.Domain)
	if err != nil {
		var ke *KeyError
		c.Result, c.Error = "permerror", err.Error()
		if errors.As(err, &ke) && ke.Temporary {
			c.Result = "temperror"
		}
		return c
	}
	if err := checkSignature(key, tags["a"], headerHash(h.pick(names), field, hc), sig); err != nil {
		c.Result, c.Error = "fail", "signature did not verify: "+err.Error()
		return c
	}
	c.Result = "pass"
	return c
}

// dkimSignatures are the tag lists of the DKIM-Signature fields, top first
// (the order go-msgauth reports them in).
func dkimSignatures(message []byte) []map[string]string {
	h, _ := readRawHeader(bufio.NewReader(bytes.NewReader(message)))
	var out []map[string]string
	for _, f := range h {
		if strings.EqualFold(fieldName(f), "DKIM-Signature") {
			tags, _ := ParseTagList(fieldValue(f))
			for _, k := range []string{"d", "s"} {
				tags[k] = strings.ToLower(tags[k])
			}
			out = append(out, tags)
		}
	}
	if len(out) > maxRecheck {
		out = out[:maxRecheck]
	}
	return out
}

func dkimResult(err error) string {
	switch {
	case err == nil:
		return "pass"
	case dkim.IsTempFail(err):
		return "temperror"
	case dkim.IsPermFail(err):
		return "permerror"
	}
	return "fail"
}

// ctxLookup adapts a context-aware lookup to go-msgauth's callback. A
// missing resolver is a temporary failure (the key was not looked at).
func ctxLookup(ctx context.Context, lookup LookupTXT) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		if lookup == nil {
			return nil, &net.DNSError{Err: "no resolver configured", Name: name, IsTemporary: true}
		}
		return lookup(ctx, name)
	}
}
