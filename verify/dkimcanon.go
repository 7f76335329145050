package verify

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/textproto"
	"strings"
)

// The DKIM primitives ARC needs (RFC 6376 §3.4, §3.7). go-msgauth's dkim
// package has them but does not export them, and its Verify only knows the
// DKIM-Signature field, so this is the minimum re-done: raw header fields
// in order, header and body canonicalization, field selection, and the
// b= blanking. Body canonicalization follows go-msgauth's canonical.go
// (MIT licence) closely.

const crlf = "\r\n"

// rawHeader is a header block as received: one "Name: value\r\n" string
// per field, continuation lines kept, top first.
type rawHeader []string

// maxRawHeader bounds the header block read for a signature check.
const maxRawHeader = 1 << 20

// readRawHeader reads the header block of r and leaves r at the body.
// A message that is only a header block (no blank line) is accepted.
func readRawHeader(r *bufio.Reader) (rawHeader, error) {
	tr := textproto.NewReader(r)
	var h rawHeader
	size := 0
	for {
		l, err := tr.ReadLine()
		if err == io.EOF && l == "" {
			return h, nil
		}
		if err != nil {
			return h, fmt.Errorf("read header: %w", err)
		}
		if size += len(l); size > maxRawHeader {
			return h, errors.New("read header: header block larger than 1 MiB")
		}
		switch {
		case l == "":
			return h, nil
		case len(h) > 0 && (l[0] == ' ' || l[0] == '\t'):
			h[len(h)-1] += l + crlf
		default:
			h = append(h, l+crlf)
		}
	}
}

// fieldName is the name of a raw field, as written.
func fieldName(kv string) string {
	k, _, _ := strings.Cut(kv, ":")
	return strings.TrimSpace(k)
}

// fieldValue is the value of a raw field, unfolded enough for tag parsing.
func fieldValue(kv string) string {
	_, v, _ := strings.Cut(kv, ":")
	return strings.TrimSpace(v)
}

// pick selects fields for h= bottom-up (RFC 6376 §5.4.2): the n-th
// occurrence of a name in h= takes the n-th field of that name counting
// from the bottom; names with no field left contribute nothing.
func (h rawHeader) pick(names []string) []string {
	used := map[string]int{}
	var out []string
	for _, name := range names {
		key := strings.ToLower(strings.TrimSpace(name))
		skip := used[key]
		used[key]++
		for i := len(h) - 1; i >= 0; i-- {
			if !strings.EqualFold(fieldName(h[i]), key) {
				continue
			}
			if skip == 0 {
				out = append(out, h[i])
				break
			}
			skip--
		}
	}
	return out
}

// canonHeader canonicalizes one raw field ("simple" or "relaxed").
func canonHeader(kv, alg string) string {
	if alg != "relaxed" {
		return kv
	}
	k, v, ok := strings.Cut(kv, ":")
	if !ok {
		return strings.TrimSpace(strings.ToLower(kv)) + ":" + crlf
	}
	k = strings.TrimSpace(strings.ToLower(k))
	v = strings.Join(strings.FieldsFunc(v, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\n' || r == '\r'
	}), " ")
	return k + ":" + v + crlf
}

// blankSignature empties the b= tag of a signature field, keeping every
// other byte (RFC 6376 §3.7: the signature is computed with b= empty).
func blankSignature(kv string) string {
	name, v, ok := strings.Cut(kv, ":")
	if !ok {
		return kv
	}
	parts := strings.Split(v, ";")
	for i, p := range parts {
		tag, _, ok := strings.Cut(p, "=")
		if ok && strings.TrimSpace(tag) == "b" {
			parts[i] = p[:strings.IndexByte(p, '=')+1]
		}
	}
	return name + ":" + strings.Join(parts, ";")
}

// headerHash hashes the selected fields and then the signature field
// itself with b= blank and no trailing CRLF.
func headerHash(fields []string, sigField, alg string) []byte {
	hh := sha256.New()
	for _, f := range fields {
		io.WriteString(hh, canonHeader(f, alg))
	}
	io.WriteString(hh, strings.TrimRight(canonHeader(blankSignature(sigField), alg), crlf))
	return hh.Sum(nil)
}

// bodyHash is the SHA-256 of the canonicalized body ("simple" or "relaxed").
func bodyHash(body io.Reader, alg string) ([]byte, error) {
	h := sha256.New()
	var wc io.WriteCloser
	if alg == "relaxed" {
		wc = &relaxedBody{w: h}
	} else {
		wc = &simpleBody{w: h}
	}
	if _, err := io.Copy(wc, body); err != nil {
		return nil, err
	}
	if err := wc.Close(); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// parseCanon reads c= ("relaxed/simple"); both default to simple.
func parseCanon(c string) (header, body string, err error) {
	header, body = "simple", "simple"
	hc, bc, two := strings.Cut(strings.ToLower(strings.TrimSpace(c)), "/")
	if hc != "" {
		header = hc
	}
	if two && bc != "" {
		body = bc
	}
	for _, a := range []string{header, body} {
		if a != "simple" && a != "relaxed" {
			return "", "", fmt.Errorf("unknown canonicalization %q", a)
		}
	}
	return header, body, nil
}

// crlfFixer turns lone LFs into CRLF: mail stored with LF line ends (an
// .eml on disk) hashes as it did on the wire.
type crlfFixer struct{ cr bool }

func (cf *crlfFixer) fix(b []byte) []byte {
	res := make([]byte, 0, len(b)+8)
	for _, ch := range b {
		prevCR := cf.cr
		cf.cr = ch == '\r'
		if ch == '\n' && !prevCR {
			res = append(res, '\r')
		}
		res = append(res, ch)
	}
	return res
}

// simpleBody: trailing empty lines removed, one CRLF at the end.
type simpleBody struct {
	w    hash.Hash
	buf  []byte // trailing CRLFs (and a lone CR) held back
	crlf crlfFixer
}

func (c *simpleBody) Write(b []byte) (int, error) {
	n := len(b)
	b = append(c.buf, c.crlf.fix(b)...)
	end := len(b)
	if end > 0 && b[end-1] == '\r' {
		end--
	}
	for end >= 2 && b[end-2] == '\r' && b[end-1] == '\n' {
		end -= 2
	}
	c.w.Write(b[:end])
	c.buf = append([]byte(nil), b[end:]...)
	return n, nil
}

func (c *simpleBody) Close() error {
	if len(c.buf) > 0 && c.buf[len(c.buf)-1] == '\r' {
		c.w.Write(c.buf)
	}
	c.w.Write([]byte(crlf))
	return nil
}

// relaxedBody: runs of WSP become one space, WSP at line ends and empty
// lines at the end go, a non-empty body ends in one CRLF.
type relaxedBody struct {
	w       hash.Hash
	pending []byte // line ends not yet known to be followed by content
	wsp     bool
	written bool
	crlf    crlfFixer
}

func (c *relaxedBody) Write(b []byte) (int, error) {
	n := len(b)
	var out bytes.Buffer
	for _, ch := range c.crlf.fix(b) {
		switch ch {
		case ' ', '\t':
			c.wsp = true
		case '\r', '\n':
			c.wsp = false
			c.pending = append(c.pending, ch)
		default:
			if len(c.pending) > 0 {
				out.Write(c.pending)
				c.pending = c.pending[:0]
			}
			if c.wsp {
				out.WriteByte(' ')
				c.wsp = false
			}
			out.WriteByte(ch)
			c.written = true
		}
	}
	c.w.Write(out.Bytes())
	return n, nil
}

func (c *relaxedBody) Close() error {
	if c.written {
		c.w.Write([]byte(crlf))
	}
	return nil
}
