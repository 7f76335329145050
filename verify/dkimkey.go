package verify

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
)

// LookupTXT returns the TXT records of name, one string per record (the
// character-strings of a record joined). verify/resolver.Resolver's method
// value fits; verify never resolves anything on its own.
type LookupTXT func(ctx context.Context, name string) ([]string, error)

// KeyError is a failed public key lookup. Temporary errors (timeouts,
// SERVFAIL) make a result temperror, the others permerror (RFC 6376 §6.1.2).
type KeyError struct {
	Name      string // <selector>._domainkey.<domain>
	Temporary bool
	Msg       string
}

func (e *KeyError) Error() string { return fmt.Sprintf("key %s: %s", e.Name, e.Msg) }

// publicKey is a key record's key and what it allows.
type publicKey struct {
	alg string // "rsa" or "ed25519"
	key crypto.PublicKey
}

// lookupKey fetches and parses the key record of selector and domain.
func lookupKey(ctx context.Context, lookup LookupTXT, selector, domain string) (publicKey, error) {
	name := selector + "._domainkey." + domain
	if lookup == nil {
		return publicKey{}, &KeyError{Name: name, Temporary: true, Msg: "no resolver configured"}
	}
	if selector == "" || domain == "" {
		return publicKey{}, &KeyError{Name: name, Msg: "signature has no s= or d="}
	}
	txts, err := lookup(ctx, name)
	if err != nil {
		var dnsErr *net.DNSError
		temp := !(errors.As(err, &dnsErr) && dnsErr.IsNotFound)
		return publicKey{}, &KeyError{Name: name, Temporary: temp, Msg: err.Error()}
	}
	switch len(txts) {
	case 0:
		return publicKey{}, &KeyError{Name: name, Msg: "no key record"}
	case 1:
	default:
		return publicKey{}, &KeyError{Name: name, Msg: fmt.Sprintf("%d TXT records, want one (RFC 6376 §3.6.2.2)", len(txts))}
	}
	k, err := parseKeyRecord(txts[0])
	if err != nil {
		return publicKey{}, &KeyError{Name: name, Msg: err.Error()}
	}
	return k, nil
}

// parseKeyRecord reads a DKIM key record (RFC 6376 §3.6.1, RFC 8463).
func parseKeyRecord(txt string) (publicKey, error) {
	tags, _ := ParseTagList(txt)
	if v, ok := tags["v"]; ok && v != "DKIM1" {
		return publicKey{}, fmt.Errorf("key record has v=%q, want DKIM1", v)
	}
	p, ok := tags["p"]
	if !ok {
		return publicKey{}, errors.New("key record has no p=")
	}
	p = strings.Join(strings.Fields(p), "")
	if p == "" {
		return publicKey{}, errors.New("key revoked (empty p=)")
	}
	der, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		return publicKey{}, fmt.Errorf("key record p= is not base64: %v", err)
	}
	if s, ok := tags["s"]; ok && !hasToken(s, "email") && !hasToken(s, "*") {
		return publicKey{}, fmt.Errorf("key record s=%q does not allow email", s)
	}
	switch k := strings.ToLower(tags["k"]); k {
	case "", "rsa":
		pub, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			// RFC 6376 erratum 3017: some publish a bare RSAPublicKey.
			if pub, err = x509.ParsePKCS1PublicKey(der); err != nil {
				return publicKey{}, fmt.Errorf("key record p= is not an RSA key: %v", err)
			}
		}
		rk, ok := pub.(*rsa.PublicKey)
		if !ok {
			return publicKey{}, errors.New("key record p= is not an RSA key")
		}
		// RFC 8301 §3.2: keys under 1024 bits are not valid.
		if rk.Size()*8 < 1024 {
			return publicKey{}, fmt.Errorf("RSA key of %d bits, want at least 1024", rk.Size()*8)
		}
		return publicKey{alg: "rsa", key: rk}, nil
	case "ed25519":
		if len(der) != ed25519.PublicKeySize {
			return publicKey{}, fmt.Errorf("ed25519 key of %d bytes, want %d", len(der), ed25519.PublicKeySize)
		}
		return publicKey{alg: "ed25519", key: ed25519.PublicKey(der)}, nil
	default:
		return publicKey{}, fmt.Errorf("unsupported key type k=%s", k)
	}
}

func hasToken(list, tok string) bool {
	for _, t := range strings.Split(list, ":") {
		if strings.EqualFold(strings.TrimSpace(t), tok) {
			return true
		}
	}
	return false
}

// checkSignature verifies sig over the SHA-256 digest with key, whose
// type must match the a= algorithm ("rsa-sha256", "ed25519-sha256").
func checkSignature(k publicKey, algorithm string, digest, sig []byte) error {
	keyAlg, hashAlg, _ := strings.Cut(strings.ToLower(algorithm), "-")
	if hashAlg != "sha256" {
		// RFC 8301 §3.1: rsa-sha1 must not be used to verify.
		return fmt.Errorf("unsupported algorithm a=%s", algorithm)
	}
	if keyAlg != k.alg {
		return fmt.Errorf("algorithm a=%s does not match the %s key", algorithm, k.alg)
	}
	switch pub := k.key.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest, sig)
	case ed25519.PublicKey:
		if !ed25519.Verify(pub, digest, sig) {
			return errors.New("ed25519: invalid signature")
		}
		return nil
	}
	return fmt.Errorf("unsupported key %T", k.key)
}

// decodeB64 decodes a b= or bh= value (whitespace already removed or not).
func decodeB64(s string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
}
