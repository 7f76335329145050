package probe

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"html"
	"math/big"
	netmail "net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message/mail"
	"github.com/google/uuid"
	"github.com/otpprobe/otpprobe/attempt"
)

// HeaderID is the canary header that carries the attempt's token.
const HeaderID = "X-Otpprobe-Id"

// tokenPrefix marks otpprobe tokens; the token also travels in the Subject as
// "[otp-…]" because some providers do not index custom headers.
const tokenPrefix = "otp-"

var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newToken returns a random token such as "otp-k3j5q7x2m4p6r8t1".
func newToken() (string, error) {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return tokenPrefix + tokenEncoding.EncodeToString(b), nil
}

// newCode returns a uniformly random 6-digit code.
func newCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

// NewAttempt creates a pending attempt with a sortable ID (UUIDv7), a token,
// a code and a Message-ID on the sender's domain.
func NewAttempt(now time.Time, probe, sender, senderFrom, mailbox, provider string, deadline, latencySLO time.Duration) (*attempt.Attempt, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	token, err := newToken()
	if err != nil {
		return nil, err
	}
	code, err := newCode()
	if err != nil {
		return nil, err
	}
	domain := addressDomain(senderFrom)
	if domain == "" {
		return nil, fmt.Errorf("from %q has no address domain for the Message-ID", senderFrom)
	}
	now = now.UTC().Truncate(time.Millisecond)
	return &attempt.Attempt{
		ID: id.String(), Probe: probe, Sender: sender, Mailbox: mailbox, Provider: provider,
		Token: token, Code: code, MessageID: id.String() + "@" + domain,
		CreatedAt: now, Deadline: now.Add(deadline), LatencySLO: latencySLO,
		Outcome: attempt.OutcomePending,
	}, nil
}

// addressDomain is the domain of from, which may carry a display name
// ("Example Bank <otp@example.com>"); "" when from is not an address.
func addressDomain(from string) string {
	a, err := netmail.ParseAddress(from)
	if err != nil {
		return ""
	}
	at := strings.LastIndexByte(a.Address, '@')
	if at < 0 || at == len(a.Address)-1 {
		return ""
	}
	return strings.ToLower(a.Address[at+1:])
}

// Canary is what a sender submits for an attempt. From may carry a display
// name, non-ASCII included (it is encoded per RFC 2047).
type Canary struct {
	From, To, Subject, Body string
}

// Compose builds the canary as a realistic OTP message: text and HTML
// alternatives, Message-ID on the sender's domain, the token in X-Otpprobe-Id
// and (by the template) in the Subject.
func Compose(a *attempt.Attempt, c Canary, date time.Time) ([]byte, error) {
	from, err := netmail.ParseAddress(c.From)
	if err != nil {
		return nil, fmt.Errorf("from %q: %w", c.From, err)
	}
	to, err := netmail.ParseAddress(c.To)
	if err != nil {
		return nil, fmt.Errorf("to %q: %w", c.To, err)
	}
	var h mail.Header
	h.SetDate(date)
	h.SetAddressList("From", []*mail.Address{{Name: from.Name, Address: from.Address}})
	h.SetAddressList("To", []*mail.Address{{Name: to.Name, Address: to.Address}})
	h.SetSubject(c.Subject)
	h.SetMessageID(a.MessageID)
	h.Set(HeaderID, a.Token)
	h.Set("Auto-Submitted", "auto-generated") // RFC 3834: never auto-reply to a canary

	var buf bytes.Buffer
	w, err := mail.CreateInlineWriter(&buf, h)
	if err != nil {
		return nil, err
	}
	for _, part := range []struct{ typ, body string }{
		{"text/plain", c.Body + "\r\n"},
		{"text/html", "<html><body><p>" + strings.ReplaceAll(html.EscapeString(c.Body), "\n", "<br>") + "</p></body></html>\r\n"},
	} {
		var ph mail.InlineHeader
		ph.Set("Content-Type", part.typ+"; charset=utf-8")
		pw, err := w.CreatePart(ph)
		if err != nil {
			return nil, err
		}
		if _, err := pw.Write([]byte(part.body)); err != nil {
			return nil, err
		}
		if err := pw.Close(); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
