package sender

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-smtp"
)

// trace is what the Received field says about a submission.
type trace struct {
	helo     string
	remoteIP string
	tls      *tls.ConnectionState
	queueID  string
	rcpts    []string
	at       time.Time
}

var (
	errMalformed = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
		Message: "Malformed message header"}
	errNoFrom = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
		Message: "Message has no valid From header"}
)

// prepare checks the From header of a submitted message, adds Received
// (and Message-ID / Date when the client left them out) and returns the
// message ready for signing, with CRLF line endings, and its Message-ID.
func (s *Server) prepare(raw []byte, t trace) ([]byte, string, error) {
	br := bufio.NewReader(bytes.NewReader(raw))
	th, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, "", errMalformed
	}
	body, err := io.ReadAll(br)
	if err != nil {
		return nil, "", errMalformed
	}
	h := mail.Header{Header: message.Header{Header: th}}

	from, err := h.AddressList("From")
	if err != nil || len(from) == 0 {
		return nil, "", errNoFrom
	}
	for _, a := range from {
		if !s.allowedAddress(a.Address) {
			return nil, "", s.sendAsDenied(a.Address)
		}
	}

	if !h.Has("Date") {
		h.SetDate(t.at)
	}
	msgID, err := h.MessageID()
	if err != nil || msgID == "" {
		if err := h.GenerateMessageIDWithHostname(s.cfg.Hostname); err != nil {
			return nil, "", fmt.Errorf("message-id: %w", err)
		}
		msgID, _ = h.MessageID()
	}
	h.Add("Received", s.received(t))

	var out bytes.Buffer
	out.Grow(len(raw) + 512)
	if err := textproto.WriteHeader(&out, h.Header.Header); err != nil {
		return nil, "", errMalformed
	}
	out.Write(crlf(body))
	return out.Bytes(), msgID, nil
}

// received builds the trace field (RFC 5321 §4.4) with the RFC 3848
// protocol type for authenticated TLS submission.
func (s *Server) received(t trace) string {
	var b strings.Builder
	fmt.Fprintf(&b, "from %s (%s [%s]) by %s with ESMTPSA id %s", t.helo, t.helo, t.remoteIP, s.cfg.Hostname, t.queueID)
	if t.tls != nil {
		fmt.Fprintf(&b, " (version=%s cipher=%s)", strings.ReplaceAll(tls.VersionName(t.tls.Version), " ", ""), tls.CipherSuiteName(t.tls.CipherSuite))
	}
	if len(t.rcpts) == 1 {
		fmt.Fprintf(&b, " for <%s>", t.rcpts[0])
	}
	fmt.Fprintf(&b, "; %s", t.at.UTC().Format(time.RFC1123Z))
	return b.String()
}

// crlf turns bare LFs into CRLF, so the signed body is the body relayed.
func crlf(b []byte) []byte {
	if !bytes.Contains(b, []byte("\n")) {
		return b
	}
	if bytes.Count(b, []byte("\r\n")) == bytes.Count(b, []byte("\n")) {
		return b
	}
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
}

// domainOf returns the lower-cased domain of addr, "" when there is none.
func domainOf(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(addr[at+1:], "."))
}

func (s *Server) allowedAddress(addr string) bool {
	return domainOf(addr) == strings.ToLower(s.cfg.AllowedFromDomain)
}
