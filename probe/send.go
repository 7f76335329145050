package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/otpprobe/otpprobe/targets"
)

// Probe-sized bounds for one SMTP exchange, used when the submission's
// context allows longer (go-smtp's own defaults are 5 and 12 minutes).
const (
	sendCommandTimeout    = 30 * time.Second // any reply, the greeting included
	sendSubmissionTimeout = 2 * time.Minute  // the reply after the message's final dot
	quitTimeout           = 5 * time.Second  // QUIT, once the message is accepted
)

// Sender submits canaries through one configured submission service
// (STARTTLS or implicit TLS, AUTH PLAIN/LOGIN/XOAUTH2). It holds no
// connection between sends and is safe for concurrent use.
type Sender struct {
	cfg   targets.Sender
	creds Credentials
	tls   *tls.Config
	mech  string // SASL mechanism name; "" sends no AUTH
	helo  string
}

// NewSender checks cfg and prepares its TLS settings. creds is asked for
// the username and secret at every send (tokens expire); it may be nil
// when cfg has no auth mechanism.
func NewSender(cfg targets.Sender, creds Credentials) (*Sender, error) {
	s := &Sender{cfg: cfg, creds: creds, helo: cfg.Helo}
	if cfg.Host == "" {
		return nil, errors.New("smtp sender: host is empty")
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return nil, fmt.Errorf("smtp sender: port %d out of range", cfg.Port)
	}
	switch cfg.TLS {
	case targets.TLSStartTLS, targets.TLSImplicit:
	case targets.TLSNone:
		if !cfg.Insecure {
			return nil, errors.New("smtp sender: tls none needs insecure: true")
		}
	default:
		return nil, fmt.Errorf("smtp sender: tls %q: want starttls, tls or none", cfg.TLS)
	}
	tlsCfg, err := cfg.TLSConfig()
	if err != nil {
		return nil, fmt.Errorf("smtp sender: %w", err)
	}
	s.tls = tlsCfg
	if cfg.Auth.Mechanism != "" {
		if s.mech, err = saslMechanism(cfg.Auth.Mechanism); err != nil {
			return nil, fmt.Errorf("smtp sender: %w", err)
		}
		if creds == nil {
			return nil, errors.New("smtp sender: auth " + cfg.Auth.Mechanism + " without credentials")
		}
	}
	if s.helo == "" {
		host, _ := os.Hostname()
		s.helo = targets.DefaultHelo(host, cfg.From)
	}
	if strings.ContainsAny(s.helo, " \t\r\n") {
		return nil, fmt.Errorf("smtp sender: helo %q is not a host name", s.helo)
	}
	return s, nil
}

// SendResult is an accepted submission.
type SendResult struct {
	SubmittedAt time.Time // when the final 250 after DATA arrived (UTC, ms)
	Reply       string    // that reply, e.g. "250 2.0.0 Ok: queued as 4Xyz"
	QueueID     string    // its text without code and enhanced code
	Transcript  string    // the dialogue, AUTH redacted, body as a byte count
}

// Send submits msg (a whole RFC 5322 message) from envelopeFrom to to. It
// returns once the server accepted the message or refused it; a failure is
// a *SendError naming the stage. ctx bounds the whole exchange: when it
// ends the connection is closed and Send returns at once.
//
// A failing QUIT after the message was accepted is not a failure: the
// mail is on its way; the transcript notes it.
func (s *Sender) Send(ctx context.Context, envelopeFrom string, to []string, msg []byte) (*SendResult, error) {
	if len(to) == 0 {
		return nil, errors.New("smtp send: no recipients")
	}
	x := &exchange{s: s, ctx: ctx, tr: newTranscript()}
	defer x.close()
	if err := x.connect(); err != nil {
		return nil, err
	}
	if err := x.auth(); err != nil {
		return nil, err
	}
	reply, err := x.submit(envelopeFrom, to, msg)
	if err != nil {
		return nil, err
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	// The message is accepted: a server slow to say goodbye must not hold
	// the probe for a whole command timeout.
	x.c.CommandTimeout = min(x.c.CommandTimeout, quitTimeout)
	if err := x.c.Quit(); err != nil {
		x.tr.note("QUIT failed after the message was accepted: %s", oneLine(err.Error()))
	}
	return &SendResult{
		SubmittedAt: at,
		Reply:       "250 " + reply,
		QueueID:     queueID(reply),
		Transcript:  x.tr.String(x.secret),
	}, nil
}

// exchange is one connection's worth of state.
type exchange struct {
	s      *Sender
	ctx    context.Context
	tr     *transcript
	conn   net.Conn
	stop   func() bool // unregisters the ctx watcher
	c      *smtp.Client
	secret string // scrubbed from everything we return
}

func (x *exchange) close() {
	if x.stop != nil {
		x.stop()
	}
	if x.conn != nil {
		x.conn.Close()
	}
}

// fail turns err, returned at stage, into a *SendError.
func (x *exchange) fail(stage string, err error) error {
	se := newSendError(x.ctx, stage, err)
	if x.secret != "" && strings.Contains(se.Error(), x.secret) { // a server echoed it
		var smtpErr *smtp.SMTPError
		if errors.As(se.Err, &smtpErr) {
			se.Err = &smtp.SMTPError{Code: smtpErr.Code, EnhancedCode: smtpErr.EnhancedCode,
				Message: scrub(smtpErr.Message, x.secret)}
		} else {
			se.Err = errors.New(scrub(se.Err.Error(), x.secret))
		}
	}
	x.tr.note("%s", se.Error())
	se.Transcript = x.tr.String(x.secret)
	return se
}

// timeouts are go-smtp's per-reply bounds: probe-sized, and never past
// ctx's deadline.
func (x *exchange) timeouts() (command, submission time.Duration) {
	command, submission = sendCommandTimeout, sendSubmissionTimeout
	if dl, ok := x.ctx.Deadline(); ok {
		left := max(time.Until(dl), time.Millisecond)
		command, submission = min(command, left), min(submission, left)
	}
	return command, submission
}

// connect dials, secures the connection as configured and says EHLO.
func (x *exchange) connect() error {
	cmdTimeout, subTimeout := x.timeouts()
	addr := net.JoinHostPort(x.s.cfg.Host, strconv.Itoa(x.s.cfg.Port))
	d := net.Dialer{Timeout: cmdTimeout}
	conn, err := d.DialContext(x.ctx, "tcp", addr)
	if err != nil {
		return x.fail(StageDial, err)
	}
	x.conn = conn
	// go-smtp takes no context: closing the connection is how ctx ends a
	// command in flight.
	x.stop = context.AfterFunc(x.ctx, func() { conn.Close() })
	x.tr.note("connected to %s from %s", addr, conn.LocalAddr())

	switch x.s.cfg.TLS {
	case targets.TLSImplicit:
		tc := tls.Client(conn, x.s.tls)
		if err := tc.HandshakeContext(x.ctx); err != nil {
			return x.fail(StageTLS, err)
		}
		x.noteTLS(tc.ConnectionState())
		x.c = smtp.NewClient(&recordingConn{Conn: tc, t: x.tr})
	case targets.TLSStartTLS:
		// go-smtp has no public STARTTLS and would say EHLO localhost
		// before it: the dialogue up to STARTTLS is ours, so the EHLO name
		// is the same on both sides of TLS.
		rc := &recordingConn{Conn: conn, t: x.tr}
		if err := x.startTLS(rc); err != nil {
			return err
		}
		rc.stop()
		tc := tls.Client(conn, x.s.tls)
		if err := tc.HandshakeContext(x.ctx); err != nil {
			return x.fail(StageTLS, err)
		}
		x.noteTLS(tc.ConnectionState())
		// go-smtp reads a greeting first; after STARTTLS the server sends
		// none, so one is handed to it without reaching the transcript.
		x.c = smtp.NewClient(&greetedConn{Conn: &recordingConn{Conn: tc, t: x.tr}, greeting: []byte("220 after STARTTLS\r\n")})
	default: // none, with insecure: true
		x.c = smtp.NewClient(&recordingConn{Conn: conn, t: x.tr})
	}
	x.c.CommandTimeout, x.c.SubmissionTimeout = cmdTimeout, subTimeout

	if err := x.c.Hello(x.s.helo); err != nil {
		if state, ok := x.c.TLSConnectionState(); (ok && !state.HandshakeComplete) || isTLSError(err) {
			return x.fail(StageTLS, err)
		}
		if x.tr.verb() == "" {
			return x.fail(StageGreeting, err)
		}
		return x.fail(StageEHLO, err)
	}
	return nil
}

// startTLS reads the greeting, says EHLO and STARTTLS on the cleartext
// connection, leaving it ready for the TLS handshake.
func (x *exchange) startTLS(conn net.Conn) error {
	cmdTimeout, _ := x.timeouts()
	tp := textproto.NewConn(conn)
	step := func(stage string, want int, cmd string) (string, error) {
		conn.SetDeadline(time.Now().Add(cmdTimeout))
		defer conn.SetDeadline(time.Time{})
		if cmd != "" {
			if err := tp.PrintfLine("%s", cmd); err != nil {
				return "", x.fail(stage, err)
			}
		}
		code, msg, err := tp.ReadResponse(want)
		if err != nil {
			var pe *textproto.Error
			if errors.As(err, &pe) {
				return "", x.fail(stage, replyError(code, msg))
			}
			return "", x.fail(stage, err)
		}
		return msg, nil
	}
	if _, err := step(StageGreeting, 220, ""); err != nil {
		return err
	}
	ext, err := step(StageEHLO, 250, "EHLO "+x.s.helo)
	if err != nil {
		return err
	}
	offered := false
	for _, line := range strings.Split(ext, "\n")[1:] {
		if strings.EqualFold(strings.TrimSpace(line), "STARTTLS") {
			offered = true
		}
	}
	if !offered {
		return x.fail(StageTLS, errors.New("server does not offer STARTTLS"))
	}
	_, err = step(StageTLS, 220, "STARTTLS")
	return err
}

// replyError is a server reply as go-smtp would have typed it.
func replyError(code int, msg string) error {
	e := &smtp.SMTPError{Code: code, EnhancedCode: smtp.NoEnhancedCode, Message: msg}
	if c, rest, ok := strings.Cut(msg, " "); ok && isEnhancedCode(c) {
		parts := strings.Split(c, ".")
		for i := range 3 {
			e.EnhancedCode[i], _ = strconv.Atoi(parts[i])
		}
		e.Message = rest
	}
	return e
}

// greetedConn hands its reader a greeting before the connection's bytes.
type greetedConn struct {
	net.Conn
	greeting []byte
}

func (c *greetedConn) Read(p []byte) (int, error) {
	if len(c.greeting) > 0 {
		n := copy(p, c.greeting)
		c.greeting = c.greeting[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (x *exchange) noteTLS(st tls.ConnectionState) {
	peer := ""
	if len(st.PeerCertificates) > 0 {
		peer = ", certificate " + st.PeerCertificates[0].Subject.String()
	}
	x.tr.note("%s %s%s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite), peer)
}

// auth authenticates when the sender is configured to.
func (x *exchange) auth() error {
	if x.s.mech == "" {
		return nil
	}
	if !x.c.SupportsAuth(x.s.mech) {
		_, offered := x.c.Extension("AUTH")
		if offered == "" {
			offered = "none"
		}
		return x.fail(StageAuth, fmt.Errorf("server does not offer AUTH %s (offers: %s)", x.s.mech, offered))
	}
	user, secret, err := x.s.creds(x.ctx)
	if err != nil {
		if x.s.mech == "XOAUTH2" {
			return x.fail(StageToken, err)
		}
		return x.fail(StageAuth, fmt.Errorf("credentials: %w", err))
	}
	x.secret = secret
	client := saslClient(x.s.mech, user, secret)
	if err := x.c.Auth(client); err != nil {
		// XOAUTH2's error challenge says why the token was refused; the
		// final 535 rarely does.
		var smtpErr *smtp.SMTPError
		if xc, ok := client.(*xoauth2Client); ok && xc.rejected != nil && errors.As(err, &smtpErr) {
			e := *smtpErr
			e.Message = strings.TrimSpace(e.Message + " (" + xc.rejected.Error() + ")")
			err = &e
		}
		return x.fail(StageAuth, err)
	}
	return nil
}

// submit runs MAIL, RCPT and DATA and returns the final reply's text.
func (x *exchange) submit(from string, to []string, msg []byte) (string, error) {
	opts := &smtp.MailOptions{Size: int64(len(msg))}
	if !isASCII(from) || !isASCII(strings.Join(to, "")) {
		opts.UTF8 = true
	}
	if err := x.c.Mail(from, opts); err != nil {
		return "", x.fail(StageMail, err)
	}
	for _, rcpt := range to {
		if err := x.c.Rcpt(rcpt, nil); err != nil {
			return "", x.fail(StageRcpt, err)
		}
	}
	w, err := x.c.Data()
	if err != nil {
		return "", x.fail(StageData, err)
	}
	if _, err := w.Write(msg); err != nil {
		return "", x.fail(StageData, err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", x.fail(StageData, err)
	}
	return oneLine(resp.StatusText), nil
}

// queueID is the final reply's text without its enhanced code: Postfix's
// "2.0.0 Ok: queued as 4Xyz" gives "Ok: queued as 4Xyz", Microsoft 365's
// "2.6.0 <id@host> [InternalId=…] Queued mail for delivery" gives the rest
// after "2.6.0".
func queueID(reply string) string {
	code, rest, ok := strings.Cut(reply, " ")
	if ok && isEnhancedCode(code) {
		return strings.TrimSpace(rest)
	}
	if isEnhancedCode(reply) {
		return ""
	}
	return strings.TrimSpace(reply)
}

// isEnhancedCode matches RFC 3463's class.subject.detail, e.g. "2.0.0".
func isEnhancedCode(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || (parts[0][0] != '2' && parts[0][0] != '4' && parts[0][0] != '5') {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) == 0 || len(p) > 3 {
			return false
		}
		for i := range len(p) {
			if !isDigit(p[i]) {
				return false
			}
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
