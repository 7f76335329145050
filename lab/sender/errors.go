package sender

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-smtp"
)

// Stage is the step of a relay attempt at which it failed.
type Stage string

const (
	StageDNS     Stage = "dns"     // MX / address lookup
	StageConnect Stage = "connect" // TCP, greeting, first EHLO
	StageTLS     Stage = "tls"     // STARTTLS and certificate verification
	StageHelo    Stage = "helo"    // EHLO after TLS
	StageMail    Stage = "mail"
	StageRcpt    Stage = "rcpt"
	StageData    Stage = "data"
)

// DeliveryError is why a recipient was not delivered on one attempt. When
// the remote MTA answered, Code/Enhanced/Message hold its reply.
type DeliveryError struct {
	Stage     Stage
	RemoteMTA string // MX host name, "" when DNS failed
	Code      int    // SMTP reply code, 0 when there was no reply
	Enhanced  smtp.EnhancedCode
	Message   string
	Temporary bool
	Err       error // underlying network / TLS / DNS error, if any
}

func (e *DeliveryError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "relay %s", e.Stage)
	if e.RemoteMTA != "" {
		fmt.Fprintf(&b, " %s", e.RemoteMTA)
	}
	if e.Code != 0 {
		fmt.Fprintf(&b, ": %s", e.reply())
	} else if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// Status is the RFC 3463 status code for a DSN: Enhanced when set (the
// reply's, or the relay's own for failures without a reply), else one
// derived from the reply class or the stage.
func (e *DeliveryError) Status() string {
	if e.Enhanced != smtp.EnhancedCodeNotSet && e.Enhanced != smtp.NoEnhancedCode {
		return fmt.Sprintf("%d.%d.%d", e.Enhanced[0], e.Enhanced[1], e.Enhanced[2])
	}
	class := 5
	if e.Temporary {
		class = 4
	}
	switch {
	case e.Code != 0:
		return fmt.Sprintf("%d.0.0", class)
	case e.Stage == StageDNS:
		return fmt.Sprintf("%d.4.3", class) // directory server failure
	case e.Stage == StageTLS:
		return fmt.Sprintf("%d.7.5", class) // cryptographic failure
	default:
		return fmt.Sprintf("%d.4.1", class) // no answer from host
	}
}

// Diagnostic is the DSN Diagnostic-Code value, e.g. "smtp; 550 5.7.26 ...".
func (e *DeliveryError) Diagnostic() string {
	if e.Code != 0 {
		return "smtp; " + e.reply()
	}
	if e.Err != nil {
		return "X-Otpprobe-Lab; " + oneLine(e.Err.Error())
	}
	return ""
}

func (e *DeliveryError) reply() string {
	s := fmt.Sprintf("%d", e.Code)
	if e.Enhanced != smtp.EnhancedCodeNotSet && e.Enhanced != smtp.NoEnhancedCode {
		s += fmt.Sprintf(" %d.%d.%d", e.Enhanced[0], e.Enhanced[1], e.Enhanced[2])
	}
	if e.Message != "" {
		s += " " + oneLine(e.Message)
	}
	return s
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// classify turns an error from go-smtp or the network into a DeliveryError.
// Replies are *smtp.SMTPError; anything else is a connection failure,
// which is always worth retrying.
func classify(stage Stage, remote string, err error) *DeliveryError {
	var de *DeliveryError
	if errors.As(err, &de) {
		return de
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return &DeliveryError{
			Stage: stage, RemoteMTA: remote, Code: se.Code, Enhanced: se.EnhancedCode,
			Message: se.Message, Temporary: se.Code/100 != 5,
		}
	}
	return &DeliveryError{Stage: stage, RemoteMTA: remote, Temporary: true, Err: err}
}
