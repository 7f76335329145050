package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
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
		if s.helo, err = os.Hostname(); err != nil || s.helo == "" {
			s.helo = "localhost"
		}
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
		// The dialogue before STARTTLS is recorded off the wire; after it
		// only go-smtp sees cleartext, so its DebugWriter records.
		rc := &recordingConn{Conn: conn, t: x.tr}
		c, err := smtp.NewClientStartTLS(rc, x.s.tls)
		if err != nil {
			return x.fail(x.startTLSStage(err), err)
		}
		rc.stop()
		c.DebugWriter = x.tr
		x.c = c
	default: // none, with insecure: true
		x.c = smtp.NewClient(&recordingConn{Conn: conn, t: x.tr})
	}
	x.c.CommandTimeout, x.c.SubmissionTimeout = cmdTimeout, subTimeout

	// After STARTTLS the handshake waits for the next command (go-smtp's
	// lazy TLS): this EHLO is where a bad certificate shows.
	if err := x.c.Hello(x.s.helo); err != nil {
		if state, ok := x.c.TLSConnectionState(); (ok && !state.HandshakeComplete) || isTLSError(err) {
			return x.fail(StageTLS, err)
		}
		if x.tr.verb() == "" {
			return x.fail(StageGreeting, err)
		}
		return x.fail(StageEHLO, err)
	}
	if x.s.cfg.TLS == targets.TLSStartTLS {
		if state, ok := x.c.TLSConnectionState(); ok {
			x.noteTLS(state)
		}
	}
	return nil
}

// startTLSStage tells which step of go-smtp's NewClientStartTLS failed
// from the last command on the wire.
func (x *exchange) startTLSStage(err error) string {
	switch x.tr.verb() {
	case "":
		return StageGreeting
	case "EHLO", "HELO":
		if strings.Contains(err.Error(), "STARTTLS") { // not offered
			return StageTLS
		}
		return StageEHLO
	}
	return StageTLS
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
		return x.fail(StageAuth, fmt.Errorf("credentials: %w", err))
	}
	x.secret = secret
	if err := x.c.Auth(saslClient(x.s.mech, user, secret)); err != nil {
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
