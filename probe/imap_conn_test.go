package probe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/otpprobe/otpprobe/targets"
)

// A server whose refusal echoes the password does not get it into the
// error (logs, the watcher's state); the refusal stays an *imap.Error, so
// it is still permanent.
func TestIMAPLoginRefusalScrubsSecret(t *testing.T) {
	const secret = "hunter2secret"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(time.Minute))
		fmt.Fprint(conn, "* OK [CAPABILITY IMAP4rev1] echo server\r\n")
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			tag, rest, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
			switch cmd, _, _ := strings.Cut(rest, " "); strings.ToUpper(cmd) {
			case "CAPABILITY":
				fmt.Fprintf(conn, "* CAPABILITY IMAP4rev1\r\n%s OK done\r\n", tag)
			case "LOGIN":
				fmt.Fprintf(conn, "%s NO [AUTHENTICATIONFAILED] no such login: %s\r\n", tag, rest)
			default:
				fmt.Fprintf(conn, "%s BAD unexpected\r\n", tag)
			}
		}
	}()
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	p, _ := strconv.Atoi(port)
	mb := targets.Mailbox{Name: "echo",
		Endpoint: targets.Endpoint{Host: host, Port: p, TLS: targets.TLSNone, Insecure: true},
		Auth:     targets.Auth{Mechanism: targets.AuthLogin, Username: "seed"}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := dialIMAP(ctx, mb, staticCreds("seed", secret), nil)
	if err == nil {
		c.Close()
		t.Fatal("login accepted by a server that refuses every login")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error carries the secret: %v", err)
	}
	if !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("error does not show the server's (redacted) reply: %v", err)
	}
	var ie *imap.Error
	var me *IMAPError
	if !errors.As(err, &ie) || !errors.As(err, &me) || me.Stage != StageLogin || me.Temporary() {
		t.Errorf("error %v (%T): want a permanent login *IMAPError around an *imap.Error", err, err)
	}
}
