package sender_test

import (
	"crypto/tls"
	"encoding/base64"
	"net/textproto"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/lab/sender"
)

func TestAuthRequiresTLS(t *testing.T) {
	w := newWorld(t)
	s := w.sender(nil)

	c, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("AUTH advertised before STARTTLS")
	}
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Error("STARTTLS not advertised")
	}
	err = c.Auth(sasl.NewPlainClient("", testUser, testPassword))
	if code, _ := smtpCode(err); code != 523 {
		t.Errorf("AUTH over plaintext: got %v, want 523 TLS required", err)
	}
	err = c.Mail(lab.OTPFrom, nil)
	if code, ec := smtpCode(err); code != 530 || ec != (smtp.EnhancedCode{5, 7, 57}) {
		t.Errorf("MAIL without AUTH: got %v (%v), want 530 5.7.57", err, ec)
	}
}

func TestAuthFailures(t *testing.T) {
	w := newWorld(t)
	s := w.sender(nil)
	for _, a := range []sasl.Client{
		sasl.NewPlainClient("", testUser, "wrong-password"),
		sasl.NewLoginClient(testUser, "wrong-password"),
		sasl.NewPlainClient("someone-else", testUser, testPassword), // authz != authc
		sasl.NewPlainClient("", "other@example-bank.test", testPassword),
	} {
		c, err := smtp.DialStartTLS(s.Addr(), &tls.Config{RootCAs: w.ca.Pool(), ServerName: "smtp.office365.test"})
		if err != nil {
			t.Fatal(err)
		}
		err = c.Auth(a)
		if code, ec := smtpCode(err); code != 535 || ec != (smtp.EnhancedCode{5, 7, 8}) {
			t.Errorf("bad credentials: got %v, want 535 5.7.8", err)
		}
		c.Close()
	}
	if got := s.Stats().AuthFailures; got != 4 {
		t.Errorf("AuthFailures = %d, want 4", got)
	}
	if strings.Contains(w.logs.String(), testPassword) || strings.Contains(w.logs.String(), "wrong-password") {
		t.Error("a password appeared in the logs")
	}
}

// TestAuthLoginWithoutInitialResponse drives LOGIN the way swaks and
// Outlook do: no initial response, two challenges.
func TestAuthLoginWithoutInitialResponse(t *testing.T) {
	w := newWorld(t)
	s := w.sender(nil)
	conn, err := tls.Dial("tcp", s.Addr(), &tls.Config{RootCAs: w.ca.Pool(), ServerName: "smtp.office365.test"})
	if err == nil {
		conn.Close()
		t.Fatal("implicit TLS accepted on the STARTTLS port")
	}
	c, err := smtp.DialStartTLS(s.Addr(), &tls.Config{RootCAs: w.ca.Pool(), ServerName: "smtp.office365.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(loginNoIR{}); err != nil {
		t.Fatalf("AUTH LOGIN without initial response: %v", err)
	}
	if err := c.Mail(lab.OTPFrom, nil); err != nil {
		t.Fatalf("MAIL after AUTH LOGIN: %v", err)
	}
}

// loginNoIR is a LOGIN client that waits for the Username: challenge.
type loginNoIR struct{}

func (loginNoIR) Start() (string, []byte, error) { return sasl.Login, nil, nil }
func (loginNoIR) Next(ch []byte) ([]byte, error) {
	switch string(ch) {
	case "Username:":
		return []byte(testUser), nil
	case "Password:":
		return []byte(testPassword), nil
	}
	return nil, sasl.ErrUnexpectedServerChallenge
}

func TestSendAsDenied(t *testing.T) {
	w := newWorld(t)
	w.mx("gmail.test", "gmail-smtp-in.l.google.test", lab.GmailIP)
	s := w.sender(nil)
	c := w.submitClient(s)

	err := c.Mail("otp@other-bank.test", nil)
	if code, ec := smtpCode(err); code != 550 || ec != (smtp.EnhancedCode{5, 7, 60}) {
		t.Errorf("MAIL FROM another domain: got %v (%v), want 550 5.7.60", err, ec)
	}
	c.Reset()

	msg := strings.Replace(canary("hdr1", "seed@gmail.test"), "From: OTP <"+lab.OTPFrom+">", "From: <ceo@other-bank.test>", 1)
	_, err = send(c, lab.OTPFrom, []string{"seed@gmail.test"}, msg)
	if code, ec := smtpCode(err); code != 550 || ec != (smtp.EnhancedCode{5, 7, 60}) {
		t.Errorf("From header on another domain: got %v (%v), want 550 5.7.60", err, ec)
	}
	c.Reset()

	msg = strings.Replace(canary("hdr2", "seed@gmail.test"), "From: OTP <"+lab.OTPFrom+">\r\n", "", 1)
	_, err = send(c, lab.OTPFrom, []string{"seed@gmail.test"}, msg)
	if code, _ := smtpCode(err); code != 550 {
		t.Errorf("no From header: got %v, want 550", err)
	}
	if st := s.Stats(); st.Submitted != 0 || st.Rejected != 3 {
		t.Errorf("stats = %+v, want 0 submitted, 3 rejected", st)
	}
}

func TestSizeLimit(t *testing.T) {
	w := newWorld(t)
	s := w.sender(func(c *sender.Config) { c.MaxMessageBytes = 2048 })
	c := w.submitClient(s)
	msg := canary("big", "seed@gmail.test") + strings.Repeat(strings.Repeat("x", 70)+"\r\n", 60)
	_, err := send(c, lab.OTPFrom, []string{"seed@gmail.test"}, msg)
	if code, _ := smtpCode(err); code != 552 {
		t.Errorf("oversized message: got %v, want 552", err)
	}
}

var m365Reply = regexp.MustCompile(`^<([^>]+)> \[InternalId=(\d+), Hostname=` + regexp.QuoteMeta(testHostname) +
	`\] \d+ bytes in \d+\.\d{3}, \d+\.\d{3} KB/sec Queued mail for delivery$`)

func TestSubmissionReplyStyles(t *testing.T) {
	w := newWorld(t)
	w.mx("gmail.test", "gmail-smtp-in.l.google.test", lab.GmailIP)

	m365 := w.sender(nil)
	reply, err := send(w.submitClient(m365), lab.OTPFrom, []string{"seed@gmail.test"}, canary("style1", "seed@gmail.test"))
	if err != nil {
		t.Fatal(err)
	}
	m := m365Reply.FindStringSubmatch(strings.TrimPrefix(reply, "2.6.0 "))
	if !strings.HasPrefix(reply, "2.6.0 ") || m == nil || m[1] != "style1@example-bank.test" {
		t.Errorf("m365 reply %q does not look like Exchange Online's", reply)
	}

	relay := w.sender(func(c *sender.Config) {
		c.Style = sender.StyleRelay
		c.ListenAddr, c.SourceIP = lab.BackupIP+":0", lab.BackupIP
	})
	c, err := smtp.DialStartTLS(relay.Addr(), &tls.Config{RootCAs: w.ca.Pool(), ServerName: "smtp.office365.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", testUser, testPassword)); err != nil {
		t.Fatal(err)
	}
	reply, err = send(c, lab.OTPFrom, []string{"seed@gmail.test"}, canary("style2", "seed@gmail.test"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^2\.0\.0 Ok: queued as [0-9A-F]{10}$`).MatchString(reply) {
		t.Errorf("relay reply %q, want Postfix style", reply)
	}
}

// TestGarbageDoesNotHang sends protocol junk; the server must answer each
// line and stay usable.
func TestGarbageDoesNotHang(t *testing.T) {
	w := newWorld(t)
	s := w.sender(nil)
	conn, err := textproto.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, _, err := conn.ReadResponse(220); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"EHLO x", "AUTH PLAIN !!!notbase64", "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00\x00")),
		"MAIL FROM:<<<>", "RCPT TO:", "DATA", "\x00\x01\x02", "NOOP"} {
		if err := conn.PrintfLine("%s", line); err != nil {
			t.Fatal(err)
		}
		code, msg, err := conn.ReadResponse(0)
		if err != nil && code == 0 {
			t.Fatalf("%q: %v", line, err)
		}
		if code == 0 {
			t.Fatalf("%q: no reply (%q)", line, msg)
		}
	}
	if _, err := smtp.Dial(s.Addr()); err != nil {
		t.Fatalf("server unusable after garbage: %v", err)
	}
}
