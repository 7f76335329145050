package receiver_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// FuzzReceive sends arbitrary bytes as the message through a real SMTP
// session to the Gmail-like host: every input must get an SMTP reply (the
// server neither panics nor hangs), and after an accepted message the
// connection must stay usable.
func FuzzReceive(f *testing.F) {
	w := newWorld(f)
	f.Add(message(f, bankDomain, "seed", activeSelector, "fz-1"))
	f.Add(message(f, bankDomain, "seed", missingSelector, "fz-2"))
	f.Add(message(f, quarantineDomain, "seed", "", "fz-3"))
	f.Add([]byte("From: a@b.test\n\nLF only\n"))
	f.Add([]byte("From: \"x\" <a@b.test>\r\nDKIM-Signature: v=1; a=rsa-sha256; d=b.test; s=s; h=from; bh=; b=\r\n\r\n"))
	f.Add([]byte("DKIM-Signature: v=1\r\nDKIM-Signature: d=\r\nFrom: <@>\r\n\r\n"))
	f.Add([]byte("From: a@b.test\r\nDKIM-Signature: v=1; a=ed25519-sha256; c=simple/simple; d=example-bank.test; s=selector1; t=1; h=From; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\n\r\n.\r\n..\r\n"))
	f.Add([]byte{})
	f.Add([]byte("\x00\xff\r\n\r\n"))

	var c *smtp.Client
	f.Cleanup(func() {
		if c != nil {
			c.Close()
		}
	})
	f.Fuzz(func(t *testing.T, msg []byte) {
		if c == nil {
			var err error
			if c, err = w.dialSMTP("gmail", m365IP); err != nil {
				t.Fatal(err)
			}
		}
		// A hang shows up as a deadline error instead of a stuck fuzzer.
		if nc, ok := clientConn(c); ok {
			nc.SetDeadline(time.Now().Add(20 * time.Second))
		}
		err := transact(c, otpFrom, "seed@gmail.test", msg)
		var se *smtp.SMTPError
		if err != nil && !errors.As(err, &se) {
			c.Close()
			c = nil
			t.Fatalf("no SMTP reply to DATA (server crashed or hung?): %v", err)
		}
		// After some refusals (a line over the limit) go-smtp closes the
		// connection on purpose; start a fresh one for the next input.
		if err := c.Reset(); err != nil {
			c.Close()
			c = nil
			if se == nil {
				t.Fatalf("RSET after an accepted message: %v", err)
			}
		}
	})
}

// clientConn digs out the net.Conn for a deadline; go-smtp does not expose
// it, so dialSMTP's conn is recorded instead.
func clientConn(c *smtp.Client) (net.Conn, bool) {
	conn, ok := dialedConns.Load(c)
	if !ok {
		return nil, false
	}
	return conn.(net.Conn), true
}
