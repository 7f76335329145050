package probe

import (
	"bufio"
	"bytes"
	"mime"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// maxTokenLen bounds a Subject candidate so a hostile Subject costs little.
const maxTokenLen = 128

// matchToken returns the first token candidate of a header block that
// match recognises: the X-Otpprobe-Id values, then every bracketed word of
// the decoded Subject (some providers do not index or keep custom headers).
// Mail that is not a canary, or whose header does not parse, yields "".
func matchToken(raw []byte, match func(token string) bool) string {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return ""
	}
	for _, c := range tokenCandidates(h) {
		if match(c) {
			return c
		}
	}
	return ""
}

// tokenCandidates lists the strings that may be an attempt token, in order
// of trust. The Subject carries a token as "[TOKEN]"; the watcher treats
// TOKEN as opaque.
func tokenCandidates(h textproto.Header) []string {
	var out []string
	for _, v := range h.Values(HeaderID) {
		if v = strings.TrimSpace(v); v != "" && len(v) <= maxTokenLen {
			out = append(out, v)
		}
	}
	// The standard decoder knows UTF-8, US-ASCII and ISO-8859-1, which is
	// what canaries use; with any other charset the raw encoded words are
	// scanned instead.
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(h.Get("Subject"))
	if err != nil {
		subject = h.Get("Subject")
	}
	return append(out, bracketedWords(subject)...)
}

// bracketedWords are the "[WORD]" parts of a Subject (no blanks or
// brackets inside, at most maxTokenLen long): where canaries put their token.
func bracketedWords(subject string) []string {
	var out []string
	for rest := subject; ; {
		open := strings.IndexByte(rest, '[')
		if open < 0 {
			return out
		}
		rest = rest[open+1:]
		end := strings.IndexAny(rest, "[] \t")
		if end < 0 {
			return out
		}
		if rest[end] != ']' || end == 0 || end > maxTokenLen {
			continue
		}
		out = append(out, rest[:end])
		rest = rest[end+1:]
	}
}
