package probe

// Interop with real servers from Debian packages: Postfix (submission,
// STARTTLS required, SASL through Dovecot) delivering by LMTP into Dovecot
// (IMAP, Sieve filing X-Spam-Flag: YES into Junk). Start them with
//
//	scripts/testservers.sh up /tmp/otpprobe-ts
//	OTPPROBE_INTEROP_ENDPOINTS=/tmp/otpprobe-ts/endpoints.json go test ./probe -run Interop
//
// (make test does both). Without the variable these tests skip, except
// under CI=true, where a skip would hide a broken setup and fails instead.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/targets"
)

// interopWait bounds waiting for delivery through Postfix and Dovecot:
// generous, the machine is shared.
const interopWait = 60 * time.Second

// interopSkip skips, or fails under CI=true.
func interopSkip(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: interop tests must run; see scripts/testservers.sh)", why)
	}
	t.Skip(why)
}

// loadInteropEndpoints reads the endpoints file written by
// scripts/testservers.sh up.
func loadInteropEndpoints(t *testing.T) *lab.Endpoints {
	t.Helper()
	path := os.Getenv("OTPPROBE_INTEROP_ENDPOINTS")
	if path == "" {
		interopSkip(t, "OTPPROBE_INTEROP_ENDPOINTS is not set: start the servers with scripts/testservers.sh up DIR")
	}
	ep, err := lab.LoadEndpoints(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(ep.Senders) == 0 || len(ep.Mailboxes) == 0 || ep.CAFile == "" {
		t.Fatalf("%s: want a sender, a mailbox and ca_file", path)
	}
	return ep
}

// interopSender is a Sender for the Postfix endpoint with the given
// mechanism and password.
func interopSender(t *testing.T, ep *lab.Endpoints, mech, password string) *Sender {
	t.Helper()
	s := ep.Senders[0]
	cfg := targets.Sender{
		Name:     s.Name,
		Endpoint: targets.Endpoint{Host: s.Host, Port: s.Port, TLS: s.TLS, CAFile: ep.CAFile},
		Auth:     targets.Auth{Mechanism: mech, Username: s.Username},
		From:     s.From,
		Helo:     "prober.interop.test",
	}
	snd, err := NewSender(cfg, func(context.Context) (string, string, error) { return s.Username, password, nil })
	if err != nil {
		t.Fatal(err)
	}
	return snd
}

// interopToken is unique per message, so reruns against the same servers
// never match an older copy.
func interopToken(t *testing.T) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "otp-" + hex.EncodeToString(b)
}

func interopMessage(from, to, token string, extra ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: OTP <%s>\r\nTo: <%s>\r\nSubject: Your verification code [%s]\r\n", from, to, token)
	fmt.Fprintf(&b, "Date: %s\r\nMessage-ID: <%s@interop.test>\r\nX-Otpprobe-Id: %s\r\n", time.Now().Format(time.RFC1123Z), token, token)
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\nYour verification code is 483920\r\n")
	return []byte(b.String())
}

func TestSenderInterop(t *testing.T) {
	ep := loadInteropEndpoints(t)
	s, mb := ep.Senders[0], ep.Mailboxes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*interopWait)
	defer cancel()

	t.Run("plain to inbox", func(t *testing.T) {
		token := interopToken(t)
		res, err := interopSender(t, ep, targets.AuthPlain, s.Password).Send(ctx, s.From, []string{mb.Address}, interopMessage(s.From, mb.Address, token))
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		if !strings.HasPrefix(res.QueueID, "Ok: queued as ") || !strings.HasPrefix(res.Reply, "250 2.0.0 Ok: queued as ") {
			t.Errorf("reply %q queue id %q: want Postfix's", res.Reply, res.QueueID)
		}
		for _, want := range []string{"C: STARTTLS", "C: EHLO prober.interop.test", "C: AUTH PLAIN [redacted]", "S: 235 2.7.0 Authentication successful", "* TLS 1."} {
			if !strings.Contains(res.Transcript, want) {
				t.Errorf("transcript lacks %q:\n%s", want, res.Transcript)
			}
		}
		assertNoSecretText(t, s.Password, res.Transcript, fmt.Sprintf("%+v", res))

		hdr := waitInteropMessage(t, ep, mb, "INBOX", token)
		// Postfix's Received names the queue ID it gave in its reply.
		if id := strings.TrimPrefix(res.QueueID, "Ok: queued as "); !bytes.Contains(hdr, []byte("id "+id)) {
			t.Errorf("delivered header does not carry queue id %s:\n%s", id, hdr)
		}
	})

	t.Run("login, spam flag to Junk", func(t *testing.T) {
		token := interopToken(t)
		msg := interopMessage(s.From, mb.Address, token, "X-Spam-Flag: YES")
		if _, err := interopSender(t, ep, targets.AuthLogin, s.Password).Send(ctx, s.From, []string{mb.Address}, msg); err != nil {
			t.Fatalf("Send: %v", err)
		}
		waitInteropMessage(t, ep, mb, mb.Junk, token)
	})

	t.Run("wrong password", func(t *testing.T) {
		const wrong = "not-the-Password-42"
		_, err := interopSender(t, ep, targets.AuthPlain, wrong).Send(ctx, s.From, []string{mb.Address}, interopMessage(s.From, mb.Address, interopToken(t)))
		se := interopSendError(t, err, StageAuth, 535, "5.7.8")
		if se.Temporary {
			t.Errorf("535 reported temporary")
		}
		assertNoSecretText(t, wrong, se.Error(), se.Transcript)
		assertNoSecretText(t, s.Password, se.Error(), se.Transcript)
	})

	t.Run("unknown recipient", func(t *testing.T) {
		to := "nobody-" + interopToken(t) + "@interop.test"
		_, err := interopSender(t, ep, targets.AuthPlain, s.Password).Send(ctx, s.From, []string{to}, interopMessage(s.From, to, interopToken(t)))
		se := interopSendError(t, err, StageRcpt, 550, "5.1.1")
		if !strings.Contains(se.Error(), "User unknown") {
			t.Errorf("Error() = %q", se.Error())
		}
	})

	t.Run("certificate from an untrusted CA", func(t *testing.T) {
		cfg := targets.Sender{Name: s.Name, Endpoint: targets.Endpoint{Host: s.Host, Port: s.Port, TLS: s.TLS},
			Auth: targets.Auth{Mechanism: targets.AuthPlain, Username: s.Username}, Helo: "prober.interop.test"}
		snd, err := NewSender(cfg, func(context.Context) (string, string, error) { return s.Username, s.Password, nil })
		if err != nil {
			t.Fatal(err)
		}
		_, err = snd.Send(ctx, s.From, []string{mb.Address}, interopMessage(s.From, mb.Address, interopToken(t)))
		se := interopSendError(t, err, StageTLS, 0, "")
		var unknown x509.UnknownAuthorityError
		if !errors.As(se, &unknown) {
			t.Errorf("error %v is not an unknown-authority error", se)
		}
		if strings.Contains(se.Transcript, "AUTH") {
			t.Errorf("credentials offered over an unverified connection:\n%s", se.Transcript)
		}
	})
}

func interopSendError(t *testing.T, err error, stage string, code int, enhanced string) *SendError {
	t.Helper()
	var se *SendError
	if !errors.As(err, &se) {
		t.Fatalf("Send = %v; want a *SendError at %s", err, stage)
	}
	if se.Stage != stage || se.Code != code || se.Enhanced != enhanced {
		t.Fatalf("got %q %d %q (%v); want %q %d %q", se.Stage, se.Code, se.Enhanced, se, stage, code, enhanced)
	}
	return se
}

func assertNoSecretText(t *testing.T, secret string, texts ...string) {
	t.Helper()
	for _, text := range texts {
		if strings.Contains(text, secret) {
			t.Errorf("secret found in:\n%s", text)
		}
	}
}

// TestSwaksInterop: swaks, a client nobody here wrote, submits through the
// same Postfix, and the message is read back from Dovecot.
func TestSwaksInterop(t *testing.T) {
	ep := loadInteropEndpoints(t)
	swaks, err := exec.LookPath("swaks")
	if err != nil {
		interopSkip(t, "swaks is not installed (scripts/testservers.sh installs it)")
	}
	s, mb := ep.Senders[0], ep.Mailboxes[0]
	token := interopToken(t)
	ctx, cancel := context.WithTimeout(context.Background(), interopWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, swaks,
		"--server", net.JoinHostPort(s.Host, strconv.Itoa(s.Port)),
		"--tls", "--tls-verify", "--tls-ca-path", ep.CAFile,
		"--auth", "PLAIN", "--auth-user", s.Username, "--auth-password", s.Password,
		"--hide-send", // swaks would print AUTH's base64 payload
		"--from", s.From, "--to", mb.Address,
		"--header", "Subject: swaks interop ["+token+"]",
		"--body", "Your verification code is 483920")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	hdr := waitInteropMessage(t, ep, mb, "INBOX", token)
	if !bytes.Contains(hdr, []byte("ESMTPSA")) {
		t.Errorf("Received does not show an authenticated TLS submission:\n%s", hdr)
	}
}

// waitInteropMessage waits until a message with token in its Subject is in
// folder, checks it is still unseen (read with BODY.PEEK) and returns its
// header.
func waitInteropMessage(t *testing.T, ep *lab.Endpoints, mb lab.Endpoint, folder, token string) []byte {
	t.Helper()
	pem, err := os.ReadFile(ep.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s: no certificate", ep.CAFile)
	}
	c, err := imapclient.DialStartTLS(net.JoinHostPort(mb.Host, strconv.Itoa(mb.Port)),
		&imapclient.Options{TLSConfig: &tls.Config{RootCAs: pool, ServerName: mb.Host}})
	if err != nil {
		t.Fatalf("imap dial: %v", err)
	}
	defer c.Close()
	if err := c.Login(mb.Username, mb.Password).Wait(); err != nil {
		t.Fatalf("imap login: %v", err)
	}
	section := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}
	deadline := time.Now().Add(interopWait)
	for {
		if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatalf("imap select %s: %v", folder, err)
		}
		data, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: token}}}, nil).Wait()
		if err != nil {
			t.Fatalf("imap search: %v", err)
		}
		if uids := data.AllUIDs(); len(uids) > 0 {
			if _, err := c.Select(folder, nil).Wait(); err != nil { // read-write: PEEK must still not set \Seen
				t.Fatalf("imap select %s: %v", folder, err)
			}
			msgs, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
			if err != nil || len(msgs) != 1 {
				t.Fatalf("imap fetch: %d messages, %v", len(msgs), err)
			}
			for _, f := range msgs[0].Flags {
				if f == imap.FlagSeen {
					t.Errorf("message is \\Seen after BODY.PEEK")
				}
			}
			hdr := msgs[0].FindBodySection(section)
			if !bytes.Contains(hdr, []byte(token)) {
				t.Fatalf("fetched header lacks the token:\n%s", hdr)
			}
			c.Logout().Wait()
			return hdr
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message with %s in %s after %v", token, folder, interopWait)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
