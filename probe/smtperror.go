package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
)

// Stages of an SMTP submission, in the order they happen: StageDial (TCP
// connect), StageGreeting, StageTLS (STARTTLS or the implicit-TLS
// handshake, certificate checks), StageEHLO, StageAuth (SASL, or the
// a password could not be had), StageToken (no OAuth2 token), StageMail, StageRcpt, StageData. StageDial
// and StageTLS are shared with IMAP (imap_conn.go).
const (
	StageGreeting = "greeting" // the server's 220 banner
	StageEHLO     = "ehlo"     // EHLO/HELO
	StageAuth     = "auth"     // SASL, or a password could not be had
	StageToken    = "token"    // an OAuth2 access token could not be had (token endpoint, token_file, token_command)
	StageSubmit   = "submit"   // Graph sendMail: the HTTP request that hands over the message
	StageMail     = "mail"     // MAIL FROM
	StageRcpt     = "rcpt"     // RCPT TO
	StageData     = "data"     // DATA, the message, the final reply
)

// SendError is a failed submission: where it failed, what the server said
// and whether trying again later may succeed.
type SendError struct {
	Stage    string // one of the Stage constants
	Code     int    // SMTP reply code; 0 when the server did not answer
	Enhanced string // RFC 3463 code, e.g. "5.7.1"; "" when none was given
	// Temporary is true for 4xx replies and for network failures (refused,
	// reset, timeouts, the probe's own deadline): nothing needs fixing for a
	// later try to succeed. 5xx replies and TLS or protocol errors are not.
	Temporary bool
	Err       error
	// Via is the protocol when it is not SMTP: "graph" (Code is then the
	// HTTP status).
	Via string
	// Transcript is the dialogue up to the failure, AUTH redacted.
	Transcript string
}

// Error is one line, e.g. "smtp rcpt: 550 5.1.1 user unknown". It holds no
// secret: the server's text is whatever the server said, and the Sender
// scrubs the credential it used from it.
func (e *SendError) Error() string {
	if e.Via != "" {
		if e.Err == nil {
			return e.Via + " " + e.Stage + ": failed"
		}
		return e.Via + " " + e.Stage + ": " + oneLine(e.Err.Error())
	}
	var smtpErr *smtp.SMTPError
	if e.Code != 0 && errors.As(e.Err, &smtpErr) {
		reply := fmt.Sprint(e.Code)
		if e.Enhanced != "" {
			reply += " " + e.Enhanced
		}
		if msg := oneLine(smtpErr.Message); msg != "" {
			reply += " " + msg
		}
		return "smtp " + e.Stage + ": " + reply
	}
	if e.Err == nil {
		return "smtp " + e.Stage + ": failed"
	}
	return "smtp " + e.Stage + ": " + oneLine(e.Err.Error())
}

func (e *SendError) Unwrap() error { return e.Err }

// newSendError classifies err, returned at stage. ctx is the submission's
// context: a connection closed because ctx ended reports ctx's error, not
// "use of closed network connection".
func newSendError(ctx context.Context, stage string, err error) *SendError {
	se := &SendError{Stage: stage, Err: err}
	var smtpErr *smtp.SMTPError
	switch {
	case errors.As(err, &smtpErr):
		se.Code = smtpErr.Code
		se.Enhanced = enhancedCode(smtpErr.EnhancedCode)
		se.Temporary = smtpErr.Temporary()
	case ctxEnded(ctx):
		se.Err = context.Cause(ctx)
		if se.Err == nil { // the deadline passed; AfterFunc has not run yet
			se.Err = context.DeadlineExceeded
		}
		se.Temporary = true
	case isTLSError(err):
		se.Temporary = false
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		se.Err = fmt.Errorf("connection closed by the server: %w", err)
		se.Temporary = true
	default:
		se.Temporary = isTransient(err)
	}
	return se
}

// ctxEnded reports whether ctx is done or its deadline has passed. A
// go-smtp command timeout set to the time left can fire a hair before
// ctx's own timer does; that is still the probe's deadline.
func ctxEnded(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// enhancedCode formats an RFC 3463 code; go-smtp leaves it zero when the
// reply had none.
func enhancedCode(c smtp.EnhancedCode) string {
	if c == smtp.EnhancedCodeNotSet || c == smtp.NoEnhancedCode {
		return ""
	}
	return fmt.Sprintf("%d.%d.%d", c[0], c[1], c[2])
}

// isTLSError reports a failed handshake or certificate check. go-smtp
// passes these through untyped.
func isTLSError(err error) bool {
	var (
		verr    *tls.CertificateVerificationError
		alert   tls.AlertError
		header  tls.RecordHeaderError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
	)
	return errors.As(err, &verr) || errors.As(err, &alert) || errors.As(err, &header) ||
		errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &invalid) ||
		strings.HasPrefix(err.Error(), "tls: ")
}

// isTransient reports network failures that a later try may not meet.
func isTransient(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.IsTemporary || dnsErr.IsTimeout
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) ||
		errors.Is(err, net.ErrClosed)
}

// oneLine joins a multi-line server reply with "; ".
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	var parts []string
	for _, l := range strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }) {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}
