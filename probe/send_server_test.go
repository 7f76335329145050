package probe

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/targets"
)

// smtpTestServer is a real go-smtp submission server on loopback (STARTTLS
// or implicit TLS with a certificate from a test CA, AUTH PLAIN, LOGIN and
// XOAUTH2), with faults injected per test through its fields. Set the
// fields before the first connection.
type smtpTestServer struct {
	t      testing.TB
	host   string
	port   int
	caFile string // the CA the client should trust

	user, password, token string

	mechs     []string                          // offered; default PLAIN LOGIN XOAUTH2
	echoAuth  bool                              // the 535 reply repeats what the client sent
	mailErr   error                             // MAIL reply
	rcptErr   map[string]error                  // RCPT reply by recipient
	dataErr   error                             // reply after the message (an *smtp.SMTPError with Code 250 sets the OK text)
	onData    func(*smtp.Conn, io.Reader) error // replaces storing the message
	onSession func(*smtp.Conn)                  // at EHLO

	mu    sync.Mutex
	msgs  []smtpTestMessage
	helos []string
}

type smtpTestMessage struct {
	From string
	To   []string
	Data []byte
}

type smtpTestMode int

const (
	smtpTestStartTLS smtpTestMode = iota
	smtpTestImplicitTLS
	smtpTestPlain         // no TLS at all (AUTH allowed in clear)
	smtpTestUntrustedCert // STARTTLS with a certificate from a CA the client does not trust
	smtpTestUntrustedTLS  // implicit TLS, same
	smtpTestNoSTARTTLS    // plaintext server that offers no STARTTLS
)

const (
	smtpTestUser     = "probe@sender.test"
	smtpTestPassword = "Pw-7fK2q9-hunter2-secret"
	smtpTestToken    = "ya29.TOKEN-q8Jx3-very-secret-bearer"
)

// newSMTPTestServer starts a server on 127.0.0.1; it is closed at test end.
func newSMTPTestServer(t testing.TB, mode smtpTestMode) *smtpTestServer {
	t.Helper()
	ca, err := lab.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpTestServer{t: t, user: smtpTestUser, password: smtpTestPassword, token: smtpTestToken,
		mechs: []string{sasl.Plain, sasl.Login, "XOAUTH2"}}
	s.caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(s.caFile, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	serverCA := ca
	if mode == smtpTestUntrustedCert || mode == smtpTestUntrustedTLS {
		if serverCA, err = lab.NewCA(); err != nil {
			t.Fatal(err)
		}
	}
	tlsCfg, err := serverCA.ServerTLS("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}

	srv := smtp.NewServer(s)
	srv.Domain = "submission.test"
	srv.MaxMessageBytes = 1 << 20
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	switch mode {
	case smtpTestImplicitTLS, smtpTestUntrustedTLS:
		ln = tls.NewListener(ln, tlsCfg)
	case smtpTestPlain, smtpTestNoSTARTTLS:
		srv.AllowInsecureAuth = true
	default:
		srv.TLSConfig = tlsCfg
	}
	s.host = "127.0.0.1"
	s.port = ln.Addr().(*net.TCPAddr).Port
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

// senderConfig is a client config for this server.
func (s *smtpTestServer) senderConfig(tlsMode, mech string) targets.Sender {
	cfg := targets.Sender{
		Name:     "test",
		Endpoint: targets.Endpoint{Host: s.host, Port: s.port, TLS: tlsMode, CAFile: s.caFile},
		Auth:     targets.Auth{Mechanism: mech, Username: s.user},
		From:     "probe@sender.test",
		Helo:     "prober.sender.test",
	}
	if tlsMode == targets.TLSNone {
		cfg.Insecure = true
	}
	return cfg
}

// sender builds a Sender with the right credentials for mech.
func (s *smtpTestServer) sender(tlsMode, mech string) *Sender {
	s.t.Helper()
	secret := s.password
	if mech == targets.AuthXOAUTH2 {
		secret = s.token
	}
	return s.senderWith(tlsMode, mech, secret)
}

func (s *smtpTestServer) senderWith(tlsMode, mech, secret string) *Sender {
	s.t.Helper()
	snd, err := NewSender(s.senderConfig(tlsMode, mech), func(context.Context) (string, string, error) {
		return s.user, secret, nil
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return snd
}

func (s *smtpTestServer) messages() []smtpTestMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]smtpTestMessage(nil), s.msgs...)
}

func (s *smtpTestServer) heloNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.helos...)
}

// NewSession implements smtp.Backend.
func (s *smtpTestServer) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	s.helos = append(s.helos, c.Hostname())
	s.mu.Unlock()
	if s.onSession != nil {
		s.onSession(c)
	}
	return &smtpTestSession{srv: s, conn: c}, nil
}

type smtpTestSession struct {
	srv    *smtpTestServer
	conn   *smtp.Conn
	authed bool
	msg    smtpTestMessage
}

var errSMTPTestAuth = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}

func (ss *smtpTestSession) authFailed(sent string) error {
	if ss.srv.echoAuth {
		return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials " + sent}
	}
	return errSMTPTestAuth
}

func (ss *smtpTestSession) AuthMechanisms() []string { return ss.srv.mechs }

func (ss *smtpTestSession) Auth(mech string) (sasl.Server, error) {
	s := ss.srv
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, user, pass string) error {
			if user != s.user || pass != s.password {
				return ss.authFailed(pass)
			}
			ss.authed = true
			return nil
		}), nil
	case sasl.Login:
		return &smtpTestLoginServer{check: func(user, pass string) error {
			if user != s.user || pass != s.password {
				return ss.authFailed(pass)
			}
			ss.authed = true
			return nil
		}}, nil
	case "XOAUTH2":
		return &smtpTestXOAUTH2Server{check: func(user, tok string) error {
			if user != s.user || tok != s.token {
				return ss.authFailed(tok)
			}
			ss.authed = true
			return nil
		}}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *smtpTestSession) Mail(from string, _ *smtp.MailOptions) error {
	if !ss.authed && ss.srv.user != "" {
		return smtp.ErrAuthRequired
	}
	if ss.srv.mailErr != nil {
		return ss.srv.mailErr
	}
	ss.msg = smtpTestMessage{From: from}
	return nil
}

func (ss *smtpTestSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := ss.srv.rcptErr[to]; err != nil {
		return err
	}
	ss.msg.To = append(ss.msg.To, to)
	return nil
}

func (ss *smtpTestSession) Data(r io.Reader) error {
	if ss.srv.onData != nil {
		return ss.srv.onData(ss.conn, r)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if ss.srv.dataErr != nil {
		var se *smtp.SMTPError
		if !errors.As(ss.srv.dataErr, &se) || se.Code != 250 {
			return ss.srv.dataErr
		}
	}
	ss.msg.Data = data
	ss.srv.mu.Lock()
	ss.srv.msgs = append(ss.srv.msgs, ss.msg)
	ss.srv.mu.Unlock()
	return ss.srv.dataErr // nil, or a custom 250 reply
}

func (ss *smtpTestSession) Reset()        { ss.msg = smtpTestMessage{} }
func (ss *smtpTestSession) Logout() error { return nil }

// smtpTestLoginServer is the server side of AUTH LOGIN (go-sasl ships only
// the client): the username may come as the initial response.
type smtpTestLoginServer struct {
	user  *string
	check func(user, pass string) error
}

func (l *smtpTestLoginServer) Next(resp []byte) ([]byte, bool, error) {
	switch {
	case l.user == nil && resp == nil:
		return []byte("Username:"), false, nil
	case l.user == nil:
		u := string(resp)
		l.user = &u
		return []byte("Password:"), false, nil
	}
	return nil, true, l.check(*l.user, string(resp))
}

// smtpTestXOAUTH2Server checks XOAUTH2's initial response strictly and, on
// a bad token, sends the JSON error challenge and fails only after the
// client's empty answer, as Google and Microsoft do.
type smtpTestXOAUTH2Server struct {
	failed error
	check  func(user, token string) error
}

func (x *smtpTestXOAUTH2Server) Next(resp []byte) ([]byte, bool, error) {
	if x.failed != nil {
		if len(resp) != 0 {
			return nil, true, errors.New("xoauth2: want an empty response to the error challenge")
		}
		return nil, true, x.failed
	}
	user, token, err := parseXOAUTH2(resp)
	if err != nil {
		return nil, true, err
	}
	if x.failed = x.check(user, token); x.failed != nil {
		return []byte(`{"status":"401","schemes":"Bearer","scope":"https://mail.test/"}`), false, nil
	}
	return nil, true, nil
}

func parseXOAUTH2(ir []byte) (user, token string, err error) {
	if !bytes.HasSuffix(ir, []byte("\x01\x01")) {
		return "", "", errors.New("xoauth2: response does not end with ^A^A")
	}
	parts := strings.Split(string(ir[:len(ir)-2]), "\x01")
	if len(parts) != 2 || !strings.HasPrefix(parts[0], "user=") || !strings.HasPrefix(parts[1], "auth=Bearer ") {
		return "", "", fmt.Errorf("xoauth2: malformed response %q", strings.Join(parts, "|"))
	}
	return strings.TrimPrefix(parts[0], "user="), strings.TrimPrefix(parts[1], "auth=Bearer "), nil
}

// rawSMTPListener is a loopback server whose every connection is handled by
// serve: for servers go-smtp cannot play (a 421 greeting, a silent one).
func rawSMTPListener(t *testing.T, serve func(net.Conn)) (host string, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				stop := context.AfterFunc(ctx, func() { c.Close() })
				defer stop()
				serve(c)
			}()
		}
	}()
	h, p, _ := net.SplitHostPort(ln.Addr().String())
	n, _ := strconv.Atoi(p)
	return h, n
}
