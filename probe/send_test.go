package probe

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/otpprobe/otpprobe/targets"
)

const (
	testFrom = "probe@sender.test"
	testRcpt = "seed@mailbox.test"
	testCode = "483920"
)

// testCanary is a small OTP message; its body must never reach a transcript.
func testCanary() []byte {
	return []byte("From: OTP <probe@sender.test>\r\n" +
		"To: seed@mailbox.test\r\n" +
		"Subject: Your code [tok-5d1c]\r\n" +
		"Message-ID: <a1@sender.test>\r\n" +
		"\r\n" +
		"Your verification code is " + testCode + "\r\n" +
		".a line that starts with a dot\r\n")
}

// assertNoSecret fails when secret, its base64, or a SASL PLAIN blob
// holding it appears in any of texts.
func assertNoSecret(t *testing.T, secret string, texts ...string) {
	t.Helper()
	forms := []string{
		secret,
		base64.StdEncoding.EncodeToString([]byte(secret)),
		base64.StdEncoding.EncodeToString([]byte("\x00" + smtpTestUser + "\x00" + secret)),
		base64.StdEncoding.EncodeToString([]byte("user=" + smtpTestUser + "\x01auth=Bearer " + secret + "\x01\x01")),
	}
	for i, text := range texts {
		for _, f := range forms {
			if strings.Contains(text, f) {
				t.Errorf("text %d holds the secret (as %q):\n%s", i, f, text)
			}
		}
	}
}

func TestSendSubmits(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mode    smtpTestMode
		tlsMode string
		mech    string
		auth    string // the AUTH line the transcript must show
	}{
		{"starttls plain", smtpTestStartTLS, targets.TLSStartTLS, targets.AuthPlain, "C: AUTH PLAIN [redacted]"},
		{"starttls login", smtpTestStartTLS, targets.TLSStartTLS, targets.AuthLogin, "C: AUTH LOGIN [redacted]"},
		{"starttls xoauth2", smtpTestStartTLS, targets.TLSStartTLS, targets.AuthXOAUTH2, "C: AUTH XOAUTH2 [redacted]"},
		{"implicit tls plain", smtpTestImplicitTLS, targets.TLSImplicit, targets.AuthPlain, "C: AUTH PLAIN [redacted]"},
		{"implicit tls login", smtpTestImplicitTLS, targets.TLSImplicit, targets.AuthLogin, "C: AUTH LOGIN [redacted]"},
		{"cleartext insecure", smtpTestPlain, targets.TLSNone, targets.AuthPlain, "C: AUTH PLAIN [redacted]"},
		{"no auth", smtpTestStartTLS, targets.TLSStartTLS, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newSMTPTestServer(t, tc.mode)
			if tc.mech == "" {
				srv.user = "" // the server then needs no AUTH
			}
			snd := srv.sender(tc.tlsMode, tc.mech)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			before := time.Now().Truncate(time.Millisecond)
			res, err := snd.Send(ctx, testFrom, []string{testRcpt}, testCanary())
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			after := time.Now()

			msgs := srv.messages()
			if len(msgs) != 1 {
				t.Fatalf("server got %d messages, want 1", len(msgs))
			}
			if m := msgs[0]; m.From != testFrom || len(m.To) != 1 || m.To[0] != testRcpt || string(m.Data) != string(testCanary()) {
				t.Errorf("server got from %q to %q data:\n%q\nwant:\n%q", m.From, m.To, m.Data, testCanary())
			}
			// Every EHLO, before STARTTLS too, says the configured name.
			for _, h := range srv.heloNames() {
				if h != "prober.sender.test" {
					t.Errorf("EHLO names %q: want the configured helo in every EHLO", srv.heloNames())
					break
				}
			}
			if tc.tlsMode == targets.TLSStartTLS && len(srv.heloNames()) != 2 {
				t.Errorf("EHLO names %q: want one before and one after STARTTLS", srv.heloNames())
			}
			if res.Reply != "250 2.0.0 OK: queued" || res.QueueID != "OK: queued" {
				t.Errorf("reply %q queue id %q", res.Reply, res.QueueID)
			}
			if res.SubmittedAt.Before(before) || res.SubmittedAt.After(after) || res.SubmittedAt.Location() != time.UTC ||
				res.SubmittedAt.Nanosecond()%int(time.Millisecond) != 0 {
				t.Errorf("SubmittedAt %v not a UTC ms time within [%v, %v]", res.SubmittedAt, before, after)
			}

			tr := res.Transcript
			t.Logf("transcript:\n%s", tr)
			for _, want := range []string{
				"C: MAIL FROM:<" + testFrom + ">",
				"C: RCPT TO:<" + testRcpt + ">",
				"C: DATA", "S: 354 ",
				"C: Subject: Your code [tok-5d1c]",
				fmt.Sprintf("C: [body: %d bytes]", len("Your verification code is "+testCode+"\r\n")+len("..a line that starts with a dot\r\n")),
				"S: 250 2.0.0 OK: queued",
				"C: EHLO prober.sender.test",
				tc.auth,
			} {
				if !strings.Contains(tr, want) {
					t.Errorf("transcript lacks %q:\n%s", want, tr)
				}
			}
			if tc.tlsMode != targets.TLSNone && !strings.Contains(tr, "* TLS 1.") {
				t.Errorf("transcript does not note TLS:\n%s", tr)
			}
			if tc.tlsMode == targets.TLSStartTLS && (!strings.Contains(tr, "C: STARTTLS") || !strings.Contains(tr, "S: 220 ")) {
				t.Errorf("transcript lacks the STARTTLS exchange:\n%s", tr)
			}
			if strings.Contains(tr, testCode) {
				t.Errorf("transcript holds the message body:\n%s", tr)
			}
			assertNoSecret(t, smtpTestPassword, tr, fmt.Sprintf("%+v", res))
			assertNoSecret(t, smtpTestToken, tr, fmt.Sprintf("%+v", res))
		})
	}
}

// TestSendQueueIDMicrosoftStyle: Microsoft 365 answers DATA with
// "2.6.0 <message-id> [InternalId=…] Queued mail for delivery".
func TestSendQueueIDMicrosoftStyle(t *testing.T) {
	srv := newSMTPTestServer(t, smtpTestStartTLS)
	const text = "<a1@sender.test> [InternalId=58308908745237, Hostname=AM0PR10MB3489.EURPRD10.PROD.OUTLOOK.COM] 2197 bytes in 0.030, 70.540 KB/sec Queued mail for delivery"
	srv.dataErr = &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 6, 0}, Message: text}
	res, err := srv.sender(targets.TLSStartTLS, targets.AuthPlain).Send(context.Background(), testFrom, []string{testRcpt}, testCanary())
	if err != nil {
		t.Fatal(err)
	}
	if res.QueueID != text || res.Reply != "250 2.6.0 "+text {
		t.Errorf("reply %q queue id %q", res.Reply, res.QueueID)
	}
}

func TestQueueID(t *testing.T) {
	for reply, want := range map[string]string{
		"2.0.0 Ok: queued as 4Xyz12abc":          "Ok: queued as 4Xyz12abc",
		"2.6.0 <x@y> [InternalId=1] Queued mail": "<x@y> [InternalId=1] Queued mail",
		"OK id=1kXyZ-0003aB-2q":                  "OK id=1kXyZ-0003aB-2q", // no enhanced code (Exim)
		"2.0.0":                                  "",
		"Ok: 2.0.0 later in the text":            "Ok: 2.0.0 later in the text",
		"":                                       "",
	} {
		if got := queueID(reply); got != want {
			t.Errorf("queueID(%q) = %q, want %q", reply, got, want)
		}
	}
}

// sendErrorCase is one way a submission fails.
type sendErrorCase struct {
	name      string
	sender    func(t *testing.T) *Sender
	stage     string
	code      int
	enhanced  string
	temporary bool
	contains  string // in Error()
}

func TestSendErrorStages(t *testing.T) {
	starttls := func(setup func(*smtpTestServer)) func(t *testing.T) *Sender {
		return func(t *testing.T) *Sender {
			srv := newSMTPTestServer(t, smtpTestStartTLS)
			if setup != nil {
				setup(srv)
			}
			return srv.sender(targets.TLSStartTLS, targets.AuthPlain)
		}
	}
	raw := func(serve func(net.Conn)) func(t *testing.T) *Sender {
		return func(t *testing.T) *Sender {
			host, port := rawSMTPListener(t, serve)
			return mustSender(t, host, port, targets.TLSStartTLS)
		}
	}
	cases := []sendErrorCase{
		{name: "connection refused", stage: StageDial, temporary: true, contains: "connection refused",
			sender: func(t *testing.T) *Sender {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				port := ln.Addr().(*net.TCPAddr).Port
				ln.Close()
				return mustSender(t, "127.0.0.1", port, targets.TLSStartTLS)
			}},
		{name: "421 greeting", stage: StageGreeting, code: 421, enhanced: "4.3.2", temporary: true,
			contains: "smtp greeting: 421 4.3.2 System not accepting network messages",
			sender: raw(func(c net.Conn) {
				io.WriteString(c, "421 4.3.2 System not accepting network messages\r\n")
			})},
		{name: "554 greeting", stage: StageGreeting, code: 554, enhanced: "5.7.1", contains: "554 5.7.1 listed",
			sender: raw(func(c net.Conn) { io.WriteString(c, "554 5.7.1 listed\r\n") })},
		{name: "421 greeting (cleartext)", stage: StageGreeting, code: 421, enhanced: "4.3.2", temporary: true,
			sender: func(t *testing.T) *Sender {
				host, port := rawSMTPListener(t, func(c net.Conn) { io.WriteString(c, "421 4.3.2 busy\r\n") })
				snd, err := NewSender(targets.Sender{Name: "t", Endpoint: targets.Endpoint{Host: host, Port: port, TLS: targets.TLSNone, Insecure: true}}, nil)
				if err != nil {
					t.Fatal(err)
				}
				return snd
			}},
		{name: "EHLO and HELO refused", stage: StageEHLO, code: 550, enhanced: "5.7.1", contains: "smtp ehlo: 550 5.7.1 go away",
			sender: raw(func(c net.Conn) {
				io.WriteString(c, "220 picky.test ESMTP\r\n")
				r := bufio.NewReader(c)
				for {
					if _, err := r.ReadString('\n'); err != nil {
						return
					}
					io.WriteString(c, "550 5.7.1 go away\r\n")
				}
			})},
		{name: "untrusted certificate (STARTTLS)", stage: StageTLS, contains: "certificate signed by unknown authority",
			sender: func(t *testing.T) *Sender {
				return newSMTPTestServer(t, smtpTestUntrustedCert).sender(targets.TLSStartTLS, targets.AuthPlain)
			}},
		{name: "untrusted certificate (implicit TLS)", stage: StageTLS, contains: "certificate signed by unknown authority",
			sender: func(t *testing.T) *Sender {
				return newSMTPTestServer(t, smtpTestUntrustedTLS).sender(targets.TLSImplicit, targets.AuthPlain)
			}},
		{name: "certificate for another name", stage: StageTLS, contains: "wanted to match localhost",
			sender: func(t *testing.T) *Sender {
				srv := newSMTPTestServer(t, smtpTestStartTLS)
				srv.host = "localhost"
				return srv.sender(targets.TLSStartTLS, targets.AuthPlain)
			}},
		{name: "STARTTLS not offered", stage: StageTLS, contains: "STARTTLS",
			sender: func(t *testing.T) *Sender {
				return newSMTPTestServer(t, smtpTestNoSTARTTLS).sender(targets.TLSStartTLS, targets.AuthPlain)
			}},
		{name: "plain server on the implicit TLS port", stage: StageTLS,
			sender: func(t *testing.T) *Sender {
				return newSMTPTestServer(t, smtpTestPlain).sender(targets.TLSImplicit, targets.AuthPlain)
			}},
		{name: "AUTH PLAIN 535", stage: StageAuth, code: 535, enhanced: "5.7.8", contains: "smtp auth: 535 5.7.8 Authentication credentials invalid",
			sender: func(t *testing.T) *Sender {
				return newSMTPTestServer(t, smtpTestStartTLS).senderWith(targets.TLSStartTLS, targets.AuthPlain, "wrong-password")
			}},
		{name: "AUTH LOGIN 535", stage: StageAuth, code: 535, enhanced: "5.7.8",
			sender: func(t *testing.T) *Sender {
				return newSMTPTestServer(t, smtpTestStartTLS).senderWith(targets.TLSStartTLS, targets.AuthLogin, "wrong-password")
			}},
		{name: "AUTH XOAUTH2 535 after the error challenge", stage: StageAuth, code: 535, enhanced: "5.7.8",
			sender: func(t *testing.T) *Sender {
				return newSMTPTestServer(t, smtpTestStartTLS).senderWith(targets.TLSStartTLS, targets.AuthXOAUTH2, "expired-token")
			}},
		{name: "mechanism not offered", stage: StageAuth, contains: "server does not offer AUTH XOAUTH2 (offers: PLAIN)",
			sender: func(t *testing.T) *Sender {
				srv := newSMTPTestServer(t, smtpTestStartTLS)
				srv.mechs = []string{"PLAIN"}
				return srv.sender(targets.TLSStartTLS, targets.AuthXOAUTH2)
			}},
		{name: "token unavailable", stage: StageToken, contains: "token_command failed",
			sender: func(t *testing.T) *Sender {
				srv := newSMTPTestServer(t, smtpTestStartTLS)
				snd, err := NewSender(srv.senderConfig(targets.TLSStartTLS, targets.AuthXOAUTH2), func(context.Context) (string, string, error) {
					return "", "", errors.New("token_command failed: exit status 1")
				})
				if err != nil {
					t.Fatal(err)
				}
				return snd
			}},
		{name: "MAIL 550", stage: StageMail, code: 550, enhanced: "5.7.1", contains: "smtp mail: 550 5.7.1 Sender not allowed",
			sender: starttls(func(s *smtpTestServer) {
				s.mailErr = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender not allowed"}
			})},
		{name: "RCPT 550 user unknown", stage: StageRcpt, code: 550, enhanced: "5.1.1", contains: "smtp rcpt: 550 5.1.1 user unknown",
			sender: starttls(func(s *smtpTestServer) {
				s.rcptErr = map[string]error{testRcpt: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "user unknown"}}
			})},
		{name: "RCPT 452 temporary", stage: StageRcpt, code: 452, enhanced: "4.5.3", temporary: true,
			sender: starttls(func(s *smtpTestServer) {
				s.rcptErr = map[string]error{testRcpt: &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "Too many recipients"}}
			})},
		{name: "DATA 554", stage: StageData, code: 554, enhanced: "5.7.1", contains: "smtp data: 554 5.7.1 Message rejected as spam",
			sender: starttls(func(s *smtpTestServer) {
				s.dataErr = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message rejected as spam"}
			})},
		{name: "server closes mid-DATA", stage: StageData, temporary: true, contains: "connection closed by the server",
			sender: starttls(func(s *smtpTestServer) {
				s.onData = func(c *smtp.Conn, r io.Reader) error {
					io.ReadFull(r, make([]byte, 10))
					c.Close()
					return errors.New("closed")
				}
			})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := tc.sender(t).Send(ctx, testFrom, []string{testRcpt}, testCanary())
			checkSendError(t, tc, res, err)
		})
	}
}

func checkSendError(t *testing.T, tc sendErrorCase, res *SendResult, err error) *SendError {
	t.Helper()
	var se *SendError
	if !errors.As(err, &se) {
		t.Fatalf("Send = %v, %v; want a *SendError", res, err)
	}
	if res != nil {
		t.Errorf("Send returned a result with its error: %+v", res)
	}
	if se.Stage != tc.stage || se.Code != tc.code || se.Enhanced != tc.enhanced || se.Temporary != tc.temporary {
		t.Errorf("got stage %q code %d enhanced %q temporary %v; want %q %d %q %v (%v)",
			se.Stage, se.Code, se.Enhanced, se.Temporary, tc.stage, tc.code, tc.enhanced, tc.temporary, err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "smtp "+tc.stage+": ") || strings.ContainsAny(msg, "\r\n") || !strings.Contains(msg, tc.contains) {
		t.Errorf("Error() = %q; want one line starting %q containing %q", msg, "smtp "+tc.stage+": ", tc.contains)
	}
	if se.Transcript == "" {
		t.Error("no transcript")
	}
	assertNoSecret(t, smtpTestPassword, msg, se.Transcript)
	assertNoSecret(t, smtpTestToken, msg, se.Transcript)
	return se
}

// mustSender is a PLAIN sender for host:port trusting no private CA.
func mustSender(t *testing.T, host string, port int, tlsMode string) *Sender {
	t.Helper()
	cfg := targets.Sender{Name: "t", Endpoint: targets.Endpoint{Host: host, Port: port, TLS: tlsMode},
		Auth: targets.Auth{Mechanism: targets.AuthPlain, Username: smtpTestUser}, Helo: "prober.test"}
	snd, err := NewSender(cfg, func(context.Context) (string, string, error) { return smtpTestUser, smtpTestPassword, nil })
	if err != nil {
		t.Fatal(err)
	}
	return snd
}

// TestSendDeadline: a server that stops answering must not hold the prober
// past its context. Bounds are generous; the point is "returns", not speed.
func TestSendDeadline(t *testing.T) {
	silent := func(c net.Conn) { io.Copy(io.Discard, c) }
	cases := []struct {
		name   string
		stage  string
		sender func(t *testing.T) *Sender
	}{
		{"silent greeting", StageGreeting, func(t *testing.T) *Sender {
			host, port := rawSMTPListener(t, silent)
			return mustSender(t, host, port, targets.TLSStartTLS)
		}},
		{"silent TLS handshake after STARTTLS", StageTLS, func(t *testing.T) *Sender {
			host, port := rawSMTPListener(t, func(c net.Conn) {
				io.WriteString(c, "220 hang.test ESMTP\r\n")
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					switch strings.ToUpper(strings.Fields(line + " x")[0]) {
					case "EHLO":
						io.WriteString(c, "250-hang.test\r\n250 STARTTLS\r\n")
					case "STARTTLS":
						io.WriteString(c, "220 2.0.0 Ready to start TLS\r\n")
						silent(c)
						return
					}
				}
			})
			return mustSender(t, host, port, targets.TLSStartTLS)
		}},
		{"server hangs after the message", StageData, func(t *testing.T) *Sender {
			srv := newSMTPTestServer(t, smtpTestStartTLS)
			release := make(chan struct{})
			t.Cleanup(func() { close(release) }) // runs before the server closes
			srv.onData = func(_ *smtp.Conn, r io.Reader) error {
				io.Copy(io.Discard, r)
				<-release
				return nil
			}
			return srv.sender(targets.TLSStartTLS, targets.AuthPlain)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			snd := tc.sender(t)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			start := time.Now()
			res, err := snd.Send(ctx, testFrom, []string{testRcpt}, testCanary())
			if elapsed := time.Since(start); elapsed > 20*time.Second {
				t.Errorf("Send returned after %v, long past its 500ms deadline", elapsed)
			}
			se := checkSendError(t, sendErrorCase{stage: tc.stage, temporary: true, contains: "context deadline exceeded"}, res, err)
			if !errors.Is(se, context.DeadlineExceeded) {
				t.Errorf("error %v does not wrap context.DeadlineExceeded", se)
			}
		})
	}
}

// TestSendScrubsEchoedSecret: a server that repeats the password in its
// reply must not get it into our error or transcript.
func TestSendScrubsEchoedSecret(t *testing.T) {
	for _, mech := range []string{targets.AuthPlain, targets.AuthLogin, targets.AuthXOAUTH2} {
		t.Run(mech, func(t *testing.T) {
			srv := newSMTPTestServer(t, smtpTestStartTLS)
			srv.echoAuth = true
			const wrong = "Wr0ng-but-still-secret"
			_, err := srv.senderWith(targets.TLSStartTLS, mech, wrong).Send(context.Background(), testFrom, []string{testRcpt}, testCanary())
			var se *SendError
			if !errors.As(err, &se) || se.Stage != StageAuth || se.Code != 535 {
				t.Fatalf("Send = %v; want an auth 535", err)
			}
			if !strings.Contains(se.Error(), "bad credentials [redacted]") {
				t.Errorf("Error() = %q; want the echo redacted", se.Error())
			}
			assertNoSecret(t, wrong, se.Error(), se.Transcript, fmt.Sprint(se.Err))
		})
	}
}

func TestSendCanceled(t *testing.T) {
	srv := newSMTPTestServer(t, smtpTestStartTLS)
	ctx, cancel := context.WithCancel(context.Background())
	srv.onData = func(_ *smtp.Conn, r io.Reader) error {
		io.Copy(io.Discard, r)
		cancel() // the prober shuts down while the server is busy
		time.Sleep(100 * time.Millisecond)
		return nil
	}
	_, err := srv.sender(targets.TLSStartTLS, targets.AuthPlain).Send(ctx, testFrom, []string{testRcpt}, testCanary())
	var se *SendError
	if !errors.As(err, &se) || se.Stage != StageData || !errors.Is(err, context.Canceled) {
		t.Fatalf("Send = %v; want stage data, context.Canceled", err)
	}
}

func TestNewSenderRejects(t *testing.T) {
	good := targets.Sender{Name: "s", Endpoint: targets.Endpoint{Host: "smtp.test", Port: 587, TLS: targets.TLSStartTLS},
		Auth: targets.Auth{Mechanism: targets.AuthPlain, Username: "u"}}
	creds := Credentials(func(context.Context) (string, string, error) { return "u", "p", nil })
	if _, err := NewSender(good, creds); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, tc := range []struct {
		mutate   func(*targets.Sender)
		nilCreds bool
		want     string
	}{
		{func(s *targets.Sender) { s.Host = "" }, false, "host is empty"},
		{func(s *targets.Sender) { s.Port = 0 }, false, "port 0 out of range"},
		{func(s *targets.Sender) { s.TLS = "ssl" }, false, `tls "ssl": want starttls, tls or none`},
		{func(s *targets.Sender) { s.TLS = targets.TLSNone }, false, "tls none needs insecure: true"},
		{func(s *targets.Sender) { s.Auth.Mechanism = "cram-md5" }, false, `auth mechanism "cram-md5"`},
		{func(s *targets.Sender) {}, true, "auth plain without credentials"},
		{func(s *targets.Sender) { s.CAFile = "/nonexistent/ca.pem" }, false, "ca_file"},
		{func(s *targets.Sender) { s.Helo = "bad name" }, false, `helo "bad name"`},
	} {
		cfg := good
		tc.mutate(&cfg)
		c := creds
		if tc.nilCreds {
			c = nil
		}
		_, err := NewSender(cfg, c)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("NewSender(%+v) = %v; want one line containing %q", cfg.Endpoint, err, tc.want)
		}
	}
}

// BenchmarkSend is one whole submission over loopback: connect, STARTTLS
// (TLS 1.3, ECDSA P-256), AUTH PLAIN, MAIL, RCPT, DATA, QUIT, transcript.
func BenchmarkSend(b *testing.B) {
	srv := newSMTPTestServer(b, smtpTestStartTLS)
	srv.onData = func(_ *smtp.Conn, r io.Reader) error { _, err := io.Copy(io.Discard, r); return err }
	snd := srv.sender(targets.TLSStartTLS, targets.AuthPlain)
	msg := testCanary()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := snd.Send(ctx, testFrom, []string{testRcpt}, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSendQuitHangs: once the final 250 arrived the message is on its way;
// a server that never answers QUIT does not turn that into a failure.
func TestSendQuitHangs(t *testing.T) {
	host, port := rawSMTPListener(t, func(c net.Conn) {
		io.WriteString(c, "220 lazy.test ESMTP\r\n")
		r := bufio.NewReader(c)
		inData := false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\r\n")
			switch verb := strings.ToUpper(strings.Fields(line + " x")[0]); {
			case inData && line == ".":
				inData = false
				io.WriteString(c, "250 2.0.0 Ok: queued as Q1\r\n")
			case inData:
			case verb == "DATA":
				inData = true
				io.WriteString(c, "354 go ahead\r\n")
			case verb == "QUIT":
				io.Copy(io.Discard, c) // never answers
				return
			default:
				io.WriteString(c, "250 ok\r\n")
			}
		}
	})
	snd, err := NewSender(targets.Sender{Name: "t", Endpoint: targets.Endpoint{Host: host, Port: port, TLS: targets.TLSNone, Insecure: true}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	res, err := snd.Send(ctx, testFrom, []string{testRcpt}, testCanary())
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if res.QueueID != "Ok: queued as Q1" || !strings.Contains(res.Transcript, "* QUIT failed after the message was accepted") {
		t.Errorf("queue id %q, transcript:\n%s", res.QueueID, res.Transcript)
	}
}
