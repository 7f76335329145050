package probe

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"sync"
)

// maxTranscript bounds what one submission keeps; a server that answers
// EHLO with megabytes must not fill the attempt store.
const maxTranscript = 32 << 10

// Who sent a transcript line.
const (
	fromClient byte = 'C'
	fromServer byte = 'S'
	fromEither byte = 0 // unknown: told apart by SMTP syntax
)

// transcript records an SMTP dialogue line by line as "C: …" and "S: …",
// with the secrets taken out as they pass: an AUTH command keeps only its
// mechanism, every client line of a SASL exchange becomes "[redacted]",
// and a message keeps its header lines while its body becomes a byte
// count. Notes of our own ("* …") mark TLS and local events.
//
// It is fed from two places. A recordingConn gives it the bytes of a
// plaintext or implicit-TLS connection with their direction. After
// STARTTLS go-smtp wraps the connection in TLS itself, so the cleartext is
// only visible through the client's DebugWriter, which mixes both
// directions; SMTP's lockstep makes them easy to tell apart (replies start
// with a 3-digit code; in DATA every line is the client's).
type transcript struct {
	mu      sync.Mutex
	out     strings.Builder
	full    bool
	partial []byte // an unfinished line
	partDir byte

	lastVerb  string // the client's last command verb, upper case
	inAuth    bool   // a SASL exchange is under way
	inData    int    // 0 no, 1 message header, 2 message body
	bodyBytes int
}

const (
	dataNone = iota
	dataHeader
	dataBody
)

func newTranscript() *transcript { return &transcript{} }

// Write takes bytes of unknown direction (go-smtp's DebugWriter).
func (t *transcript) Write(p []byte) (int, error) {
	t.feed(fromEither, p)
	return len(p), nil
}

// feed splits p into lines and records each complete one.
func (t *transcript) feed(dir byte, p []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.partial) > 0 && dir != t.partDir {
		t.line(t.partDir, t.partial) // the other side spoke: that line is over
		t.partial = t.partial[:0]
	}
	t.partDir = dir
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(t.partial) < 4096 { // a line this long is recorded cut
				t.partial = append(t.partial, p[:min(len(p), 4096-len(t.partial))]...)
			}
			return
		}
		if len(t.partial) > 0 {
			t.partial = append(t.partial, p[:i]...)
			t.line(dir, t.partial)
			t.partial = t.partial[:0]
		} else {
			t.line(dir, p[:i])
		}
		p = p[i+1:]
	}
}

// line records one line without its CRLF.
func (t *transcript) line(dir byte, b []byte) {
	s := strings.TrimSuffix(string(b), "\r")
	if dir == fromEither {
		dir = fromClient
		if t.inData == dataNone && isReplyLine(s) {
			dir = fromServer
		}
	}
	if dir == fromServer {
		t.serverLine(s)
	} else {
		t.clientLine(s)
	}
}

func (t *transcript) serverLine(s string) {
	t.add("S: " + s)
	if len(s) < 3 || (len(s) > 3 && s[3] == '-') {
		return // more lines of this reply follow
	}
	switch code := s[:3]; {
	case t.inAuth && code == "334":
		// the next client line answers the challenge
	case t.inAuth:
		t.inAuth = false
	case t.lastVerb == "DATA" && code == "354":
		t.inData = dataHeader
		t.bodyBytes = 0
	}
}

func (t *transcript) clientLine(s string) {
	switch {
	case t.inData != dataNone:
		t.messageLine(s)
		return
	case t.inAuth:
		if s != "*" { // "*" cancels the exchange and is no secret
			s = "[redacted]"
		}
	default:
		verb, rest, _ := strings.Cut(s, " ")
		t.lastVerb = strings.ToUpper(verb)
		if t.lastVerb == "AUTH" {
			t.inAuth = true
			if mech, ir, _ := strings.Cut(rest, " "); ir != "" {
				s = verb + " " + mech + " [redacted]"
			}
		}
	}
	t.add("C: " + s)
}

// messageLine keeps the message's header lines and counts its body.
func (t *transcript) messageLine(s string) {
	switch {
	case s == ".":
		if t.inData == dataBody {
			t.add(fmt.Sprintf("C: [body: %d bytes]", t.bodyBytes))
		}
		t.add("C: .")
		t.inData = dataNone
	case t.inData == dataHeader && s == "":
		t.inData = dataBody
		t.add("C: ")
	case t.inData == dataHeader:
		t.add("C: " + s)
	default:
		t.bodyBytes += len(s) + 2
	}
}

// isReplyLine matches "250 ok", "250-SIZE" and a bare "250". A client line
// never looks like that: commands are words, SASL responses are base64
// (no spaces or dashes, length a multiple of 4).
func isReplyLine(s string) bool {
	if len(s) < 3 || s[0] < '1' || s[0] > '5' || !isDigit(s[1]) || !isDigit(s[2]) {
		return false
	}
	return len(s) == 3 || s[3] == ' ' || s[3] == '-'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// note records an event of our own.
func (t *transcript) note(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.add("* " + fmt.Sprintf(format, args...))
}

func (t *transcript) add(line string) {
	if t.full {
		return
	}
	if t.out.Len()+len(line) > maxTranscript {
		t.out.WriteString("* [transcript truncated]\n")
		t.full = true
		return
	}
	t.out.WriteString(line)
	t.out.WriteByte('\n')
}

// verb is the client's last command verb ("" before the first command);
// it tells which stage a compound go-smtp call failed in.
func (t *transcript) verb() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastVerb
}

// String returns the transcript with secret (when non-empty) scrubbed from
// it in clear and base64 forms: the redaction above is by syntax, this is
// the belt to its braces (a server may echo what it was sent).
func (t *transcript) String(secret string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.out.String()
	if len(t.partial) > 0 { // a reply cut off by a closed connection
		dir := "C: "
		if t.partDir == fromServer || (t.partDir == fromEither && isReplyLine(string(t.partial))) {
			dir = "S: "
		}
		if t.inAuth || t.inData != dataNone {
			s += dir + "[partial line]\n"
		} else {
			s += dir + strings.TrimSuffix(string(t.partial), "\r") + "\n"
		}
	}
	return scrub(s, secret)
}

// scrub replaces secret and its base64 encoding in s.
func scrub(s, secret string) string {
	if secret == "" {
		return s
	}
	s = strings.ReplaceAll(s, secret, "[redacted]")
	return strings.ReplaceAll(s, base64.StdEncoding.EncodeToString([]byte(secret)), "[redacted]")
}

// recordingConn copies a connection's cleartext into a transcript with its
// direction, until off is called (when go-smtp starts TLS underneath).
type recordingConn struct {
	net.Conn
	t   *transcript
	mu  sync.Mutex
	off bool
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.recording() {
		c.t.feed(fromServer, p[:n])
	}
	return n, err
}

func (c *recordingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 && c.recording() {
		c.t.feed(fromClient, p[:n])
	}
	return n, err
}

func (c *recordingConn) recording() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.off
}

// stop ends recording: the bytes from here on are TLS records.
func (c *recordingConn) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off = true
}
