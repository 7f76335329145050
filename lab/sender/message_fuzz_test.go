package sender

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"
)

// FuzzPrepare feeds arbitrary DATA through what the submission service does
// with it (header checks, trace fields, signing) and through the DSN
// builder: nothing may panic, and what is accepted must parse again.
func FuzzPrepare(f *testing.F) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	s := &Server{cfg: Config{
		Hostname: "mail.protection.outlook.test", AllowedFromDomain: "example-bank.test",
		DKIM: DKIMConfig{Domain: "example-bank.test", Selector: "s1", Signer: key},
	}}
	for _, seed := range []string{
		"From: otp@example-bank.test\r\nSubject: hi\r\n\r\nbody\r\n",
		"From: \"A\" <otp@Example-Bank.test>, b@example-bank.test\nTo: x@y\n\nbare LF body\n.\n",
		"From: otp@other.test\r\n\r\n",
		"Subject: no from\r\n\r\n",
		"From: =?utf-8?q?=C3=A9?= <otp@example-bank.test>\r\nMessage-ID: <<>>\r\n folded\r\n\r\n",
		"no header at all",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		tr := trace{helo: "c.test", remoteIP: "127.0.0.1", queueID: "Q1", rcpts: []string{"a@b.test"}, at: time.Unix(0, 0)}
		msg, _, err := s.prepare(raw, tr)
		if err != nil {
			return
		}
		if _, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(msg))); err != nil {
			t.Fatalf("prepared message does not parse: %v\n%q", err, msg)
		}
		signed, err := sign(s.cfg.DKIM, msg)
		if err != nil {
			t.Fatalf("sign: %v", err)
		}
		fail := &DeliveryError{Stage: StageData, RemoteMTA: "mx.test", Code: 550, Message: "no\r\nway"}
		dsn, err := s.buildDSN(&queuedMessage{id: "Q1", from: "otp@example-bank.test", data: signed, arrival: tr.at},
			[]rcptStatus{{rcpt: "a@b.test", err: fail}}, tr.at)
		if err != nil {
			t.Fatalf("DSN for an accepted message: %v", err)
		}
		if _, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(dsn))); err != nil {
			t.Fatalf("DSN header does not parse: %v", err)
		}
	})
}
