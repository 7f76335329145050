package verify

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ARCSealer adds an ARC set to messages it forwards (RFC 8617 §5.1), as a
// mailing list or forwarder does. Keys are RSA or Ed25519.
type ARCSealer struct {
	Domain   string // d=
	Selector string // s=
	Signer   crypto.Signer
	// HeaderKeys are the fields the AMS signs (default
	// DefaultARCHeaderKeys); ARC-Seal is never signed.
	HeaderKeys []string
	Now        func() time.Time
}

// DefaultARCHeaderKeys is what the AMS signs by default: the fields a
// reader sees, the MIME structure, and the sealer's own AAR.
var DefaultARCHeaderKeys = []string{
	"From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To", "MIME-Version",
	"Content-Type", "Content-Transfer-Encoding", "DKIM-Signature", fieldAAR,
}

// Seal returns the next ARC set for message, to be prepended to it:
// "ARC-Seal: …\r\nARC-Message-Signature: …\r\nARC-Authentication-Results: …\r\n".
// authResults is what the sealer found, as an Authentication-Results body
// ("authserv-id; spf=pass …"); cv is its validation of the chain so far
// ("none" when there is none, "pass" or "fail").
func (s *ARCSealer) Seal(message []byte, authResults, cv string) (string, error) {
	if s.Signer == nil || s.Domain == "" || s.Selector == "" {
		return "", errors.New("arc seal: Domain, Selector and Signer are required")
	}
	alg, err := signAlgorithm(s.Signer)
	if err != nil {
		return "", err
	}
	br := bufio.NewReader(bytes.NewReader(message))
	h, err := readRawHeader(br)
	if err != nil {
		return "", fmt.Errorf("arc seal: %w", err)
	}
	hdr, err := ReadHeader(bytes.NewReader(message))
	if err != nil {
		return "", fmt.Errorf("arc seal: %w", err)
	}
	chain := ParseARC(hdr)
	i := chain.Instances + 1
	switch {
	case i > maxARCInstances:
		return "", fmt.Errorf("arc seal: already %d ARC sets", chain.Instances)
	case i == 1:
		cv = "none"
	case cv != "pass" && cv != "fail":
		return "", fmt.Errorf("arc seal: cv=%q for instance %d, want pass or fail", cv, i)
	}
	// A seal over a failed chain covers only its own set: the sets below
	// are not worth vouching for (and may be malformed).
	var sets []rawSet
	if i > 1 && cv == "pass" {
		if sets, err = rawARCSets(h, i-1); err != nil {
			return "", fmt.Errorf("arc seal: %w", err)
		}
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	t := now().Unix()

	aar := fmt.Sprintf("%s: i=%d; %s\r\n", fieldAAR, i, strings.TrimSpace(authResults))
	bh, err := bodyHash(br, "relaxed")
	if err != nil {
		return "", fmt.Errorf("arc seal: %w", err)
	}
	keys := s.HeaderKeys
	if keys == nil {
		keys = DefaultARCHeaderKeys
	}
	for _, k := range keys {
		if strings.EqualFold(k, fieldAS) {
			return "", errors.New("arc seal: HeaderKeys must not include ARC-Seal")
		}
	}
	ams := fmt.Sprintf("%s: i=%d; a=%s; c=relaxed/relaxed; d=%s; s=%s; t=%d;\r\n\th=%s;\r\n\tbh=%s; b=",
		fieldAMS, i, alg, s.Domain, s.Selector, t, strings.Join(keys, ":"), base64.StdEncoding.EncodeToString(bh))
	withAAR := append(rawHeader{aar}, h...)
	if ams, err = s.sign(ams, headerHash(withAAR.pick(keys), ams, "relaxed")); err != nil {
		return "", err
	}
	as := fmt.Sprintf("%s: i=%d; a=%s; cv=%s; d=%s; s=%s; t=%d; b=", fieldAS, i, alg, cv, s.Domain, s.Selector, t)
	sets = append(sets, rawSet{aar: aar, ams: ams, as: as})
	if as, err = s.sign(as, sealHash(sets)); err != nil {
		return "", err
	}
	return as + ams + aar, nil
}

// sign appends the folded base64 signature of digest to a field ending
// in "b=" and terminates it.
func (s *ARCSealer) sign(field string, digest []byte) (string, error) {
	opts := crypto.Hash(0) // Ed25519 signs the digest itself (RFC 8463 §3)
	if _, ok := s.Signer.Public().(*rsa.PublicKey); ok {
		opts = crypto.SHA256
	}
	sig, err := s.Signer.Sign(rand.Reader, digest, opts)
	if err != nil {
		return "", fmt.Errorf("arc seal: sign: %w", err)
	}
	b64 := base64.StdEncoding.EncodeToString(sig)
	var sb strings.Builder
	sb.WriteString(field)
	for len(b64) > 72 {
		sb.WriteString(b64[:72])
		sb.WriteString("\r\n\t")
		b64 = b64[72:]
	}
	sb.WriteString(b64)
	sb.WriteString("\r\n")
	return sb.String(), nil
}

func signAlgorithm(s crypto.Signer) (string, error) {
	switch s.Public().(type) {
	case *rsa.PublicKey:
		return "rsa-sha256", nil
	case ed25519.PublicKey:
		return "ed25519-sha256", nil
	}
	return "", fmt.Errorf("arc seal: unsupported key %T (want RSA or Ed25519)", s.Public())
}
