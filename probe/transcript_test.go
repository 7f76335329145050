package probe

import (
	"strings"
	"testing"
)

// A dialogue as go-smtp's DebugWriter sees it after STARTTLS: both
// directions in one stream. Fed one byte at a time, so every line is split
// across writes.
const debugStream = "EHLO prober.test\r\n" +
	"250-mx.test\r\n250-AUTH LOGIN XOAUTH2\r\n250 SIZE 1000\r\n" +
	"AUTH LOGIN cHJvYmVAc2VuZGVyLnRlc3Q=\r\n" +
	"334 UGFzc3dvcmQ6\r\n" +
	"aHVudGVyMg==\r\n" +
	"235 2.7.0 Accepted\r\n" +
	"MAIL FROM:<a@b.test>\r\n250 2.1.0 Ok\r\n" +
	"RCPT TO:<c@d.test>\r\n250 2.1.5 Ok\r\n" +
	"DATA\r\n354 End data with <CR><LF>.<CR><LF>\r\n" +
	"Subject: code\r\n" +
	"X-Spam: 250 looks like a reply\r\n" +
	"\r\n" +
	"250 this body line looks like a reply too\r\n" +
	"..dot-stuffed\r\n" +
	".\r\n" +
	"250 2.0.0 Ok: queued as 4Xyz\r\n" +
	"QUIT\r\n221 2.0.0 Bye\r\n"

const debugTranscript = `C: EHLO prober.test
S: 250-mx.test
S: 250-AUTH LOGIN XOAUTH2
S: 250 SIZE 1000
C: AUTH LOGIN [redacted]
S: 334 UGFzc3dvcmQ6
C: [redacted]
S: 235 2.7.0 Accepted
C: MAIL FROM:<a@b.test>
S: 250 2.1.0 Ok
C: RCPT TO:<c@d.test>
S: 250 2.1.5 Ok
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
C: Subject: code
C: X-Spam: 250 looks like a reply
C: 
C: [body: 58 bytes]
C: .
S: 250 2.0.0 Ok: queued as 4Xyz
C: QUIT
S: 221 2.0.0 Bye
`

func TestTranscriptDebugStream(t *testing.T) {
	tr := newTranscript()
	for i := range len(debugStream) {
		tr.Write([]byte{debugStream[i]})
	}
	if got := tr.String(""); got != debugTranscript {
		t.Errorf("transcript:\n%s\nwant:\n%s", got, debugTranscript)
	}
	if v := tr.verb(); v != "QUIT" {
		t.Errorf("last verb %q, want QUIT", v)
	}
}

func TestTranscriptKnownDirection(t *testing.T) {
	tr := newTranscript()
	tr.feed(fromServer, []byte("220 mx.test ESMTP\r\n"))
	tr.feed(fromClient, []byte("AUTH PLAIN AGEAcGFzcw==\r\n"))
	tr.feed(fromServer, []byte("535 5.7.8 no\r\n"))
	tr.feed(fromClient, []byte("AUTH XOAUTH2\r\n")) // no initial response
	tr.feed(fromServer, []byte("334 \r\n"))
	tr.feed(fromClient, []byte("dXNlcj1h\r\n"))
	tr.feed(fromServer, []byte("334 eyJzdGF0dXMiOiI0MDEifQ==\r\n"))
	tr.feed(fromClient, []byte("\r\n"))
	tr.feed(fromServer, []byte("535 5.7.8 bad token\r\n"))
	tr.feed(fromClient, []byte("MAIL FROM:<a@b.test>\r\n"))
	tr.feed(fromServer, []byte("421 4.4.2 timeout")) // cut: the server hung up
	want := `S: 220 mx.test ESMTP
C: AUTH PLAIN [redacted]
S: 535 5.7.8 no
C: AUTH XOAUTH2
S: 334 
C: [redacted]
S: 334 eyJzdGF0dXMiOiI0MDEifQ==
C: [redacted]
S: 535 5.7.8 bad token
C: MAIL FROM:<a@b.test>
S: 421 4.4.2 timeout
`
	if got := tr.String(""); got != want {
		t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
	}
}

func TestTranscriptScrubsAndBounds(t *testing.T) {
	tr := newTranscript()
	tr.feed(fromServer, []byte("535 5.7.8 password hunter2 (aHVudGVyMg==) rejected\r\n"))
	if got := tr.String("hunter2"); strings.Contains(got, "hunter2") || strings.Contains(got, "aHVudGVyMg==") {
		t.Errorf("secret not scrubbed: %q", got)
	}

	tr = newTranscript()
	line := []byte("250-" + strings.Repeat("x", 1000) + "\r\n")
	for range 100 {
		tr.feed(fromServer, line)
	}
	got := tr.String("")
	if len(got) > maxTranscript+100 || !strings.HasSuffix(got, "* [transcript truncated]\n") {
		t.Errorf("transcript of %d bytes, ends %q", len(got), got[len(got)-40:])
	}
}

func TestIsReplyLine(t *testing.T) {
	for s, want := range map[string]bool{
		"250 ok": true, "250-SIZE": true, "354": true, "421 4.3.2 bye": true,
		"EHLO x": false, "dXNlcj1h": false, "2500": false, "25": false, "": false, "650 x": false, "*": false,
	} {
		if got := isReplyLine(s); got != want {
			t.Errorf("isReplyLine(%q) = %v", s, got)
		}
	}
}
