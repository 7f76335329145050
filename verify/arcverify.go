package verify

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ARCValidator checks the ARC-Message-Signature and ARC-Seal signatures of
// a chain (RFC 8617 §5.2 steps 5–6) with keys fetched through Lookup. It
// implements ARCVerifier.
type ARCValidator struct {
	Lookup LookupTXT
}

// ARCError says which signature of which ARC set did not verify.
type ARCError struct {
	Instance int
	Field    string // "ARC-Message-Signature" or "ARC-Seal"
	// Temporary is set when the key could not be fetched for a reason that
	// may pass (timeout, SERVFAIL): the chain is unverified, not forged.
	Temporary bool
	Err       error
}

func (e *ARCError) Error() string {
	return fmt.Sprintf("%s i=%d: %v", e.Field, e.Instance, e.Err)
}

func (e *ARCError) Unwrap() error { return e.Err }

const (
	fieldAAR = "ARC-Authentication-Results"
	fieldAMS = "ARC-Message-Signature"
	fieldAS  = "ARC-Seal"
)

// VerifyARC verifies the newest AMS over the message and every AS over the
// ARC sets up to its own (RFC 8617 §5.2). Older AMSs are not required to
// verify: intermediaries after them may have changed the message, which is
// exactly what ARC records. message is the whole raw message.
func (v ARCValidator) VerifyARC(ctx context.Context, message io.Reader, chain ARCChain) error {
	br := bufio.NewReader(message)
	h, err := readRawHeader(br)
	if err != nil {
		return err
	}
	n := chain.Instances
	if n < 1 {
		return errors.New("no ARC sets to verify")
	}
	sets, err := rawARCSets(h, n)
	if err != nil {
		return err
	}
	if err := v.verifyAMS(ctx, h, br, sets[n-1].ams, n); err != nil {
		return err
	}
	for i := n; i >= 1; i-- {
		if err := v.verifySeal(ctx, sets, i); err != nil {
			return err
		}
	}
	return nil
}

// rawSet is one instance's three raw fields.
type rawSet struct{ aar, ams, as string }

// rawARCSets finds the raw fields of instances 1..n (the structure was
// checked by ParseARC; a message changed since is reported here).
func rawARCSets(h rawHeader, n int) ([]rawSet, error) {
	sets := make([]rawSet, n)
	for _, f := range h {
		name := fieldName(f)
		var i int
		switch {
		case strings.EqualFold(name, fieldAAR):
			i, _, _ = parseAAR(fieldValue(f))
		case strings.EqualFold(name, fieldAMS), strings.EqualFold(name, fieldAS):
			tags, _ := ParseTagList(fieldValue(f))
			i, _ = instance(tags, name)
		default:
			continue
		}
		if i < 1 || i > n {
			return nil, fmt.Errorf("%s with instance %d outside 1..%d", name, i, n)
		}
		s := &sets[i-1]
		switch {
		case strings.EqualFold(name, fieldAAR):
			s.aar = f
		case strings.EqualFold(name, fieldAMS):
			s.ams = f
		default:
			s.as = f
		}
	}
	for i, s := range sets {
		if s.aar == "" || s.ams == "" || s.as == "" {
			return nil, fmt.Errorf("ARC set %d is incomplete", i+1)
		}
	}
	return sets, nil
}

// sigTags reads the tags every ARC signature needs.
func sigTags(field string, required ...string) (map[string]string, error) {
	tags, err := ParseTagList(fieldValue(field))
	if err != nil {
		return nil, err
	}
	for _, t := range required {
		if _, ok := tags[t]; !ok {
			return nil, fmt.Errorf("missing %s= tag", t)
		}
	}
	return tags, nil
}

func (v ARCValidator) verifyAMS(ctx context.Context, h rawHeader, body io.Reader, field string, i int) error {
	fail := func(err error) error { return arcErr(i, fieldAMS, err) }
	tags, err := sigTags(field, "a", "b", "bh", "d", "s", "h")
	if err != nil {
		return fail(err)
	}
	hc, bc, err := parseCanon(tags["c"])
	if err != nil {
		return fail(err)
	}
	names := strings.Split(tags["h"], ":")
	for _, n := range names {
		// RFC 8617 §4.1.2: an AMS must not sign ARC-Seal fields.
		if strings.EqualFold(strings.TrimSpace(n), fieldAS) {
			return fail(errors.New("h= includes ARC-Seal"))
		}
	}
	want, err := decodeB64(tags["bh"])
	if err != nil {
		return fail(fmt.Errorf("bh= is not base64: %v", err))
	}
	got, err := bodyHash(body, bc)
	if err != nil {
		return fail(err)
	}
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return fail(errors.New("body hash did not verify"))
	}
	digest := headerHash(h.pick(names), field, hc)
	return v.check(ctx, tags, digest, fail)
}

func (v ARCValidator) verifySeal(ctx context.Context, sets []rawSet, i int) error {
	fail := func(err error) error { return arcErr(i, fieldAS, err) }
	tags, err := sigTags(sets[i-1].as, "a", "b", "d", "s", "cv")
	if err != nil {
		return fail(err)
	}
	if _, ok := tags["h"]; ok {
		// RFC 8617 §4.1.3: the seal's coverage is fixed, h= is not allowed.
		return fail(errors.New("ARC-Seal has an h= tag"))
	}
	return v.check(ctx, tags, sealHash(sets[:i]), fail)
}

// sealHash is the digest an ARC-Seal signs (RFC 8617 §5.1.1): for every
// set from 1 up, its AAR, AMS and AS, relaxed; the last AS with b= blank.
func sealHash(sets []rawSet) []byte {
	var fields []string
	for j, s := range sets {
		fields = append(fields, s.aar, s.ams)
		if j < len(sets)-1 {
			fields = append(fields, s.as)
		}
	}
	return headerHash(fields, sets[len(sets)-1].as, "relaxed")
}

// check fetches the key named by d= and s= and verifies b= over digest.
func (v ARCValidator) check(ctx context.Context, tags map[string]string, digest []byte, fail func(error) error) error {
	sig, err := decodeB64(tags["b"])
	if err != nil {
		return fail(fmt.Errorf("b= is not base64: %v", err))
	}
	key, err := lookupKey(ctx, v.Lookup, strings.ToLower(tags["s"]), strings.ToLower(tags["d"]))
	if err != nil {
		e := fail(err).(*ARCError)
		var ke *KeyError
		e.Temporary = errors.As(err, &ke) && ke.Temporary
		return e
	}
	if err := checkSignature(key, tags["a"], digest, sig); err != nil {
		return fail(fmt.Errorf("signature did not verify: %v", err))
	}
	return nil
}

func arcErr(i int, field string, err error) error {
	return &ARCError{Instance: i, Field: field, Err: err}
}

// VerifyARCMessage parses the ARC chain of a raw message and, when its
// structure is intact, verifies its signatures with v.
func VerifyARCMessage(ctx context.Context, v ARCVerifier, message []byte) (ARCChain, error) {
	h, err := ReadHeader(bytes.NewReader(message))
	if err != nil {
		return ARCChain{}, err
	}
	return VerifyARC(ctx, v, bytes.NewReader(message), ParseARC(h)), nil
}
