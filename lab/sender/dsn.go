package sender

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// bounce reports failed recipients of m to its envelope sender with a DSN,
// relayed like any other message. A DSN that fails is only logged: never
// a DSN about a DSN (RFC 3461 §6.2, RFC 5321 §4.5.5).
func (s *Server) bounce(m *queuedMessage, failed []rcptStatus) {
	s.stats.bounced.Add(uint64(len(failed)))
	for _, f := range failed {
		s.log.Info("bounced", "queue_id", m.id, "rcpt", f.rcpt, "status", f.err.Status(), "err", f.err)
	}
	if m.from == "" {
		s.log.Warn("undeliverable DSN discarded", "queue_id", m.id)
		return
	}
	now := time.Now()
	dsn, err := s.buildDSN(m, failed, now)
	if err == nil {
		dsn, err = sign(s.cfg.DKIM, dsn)
	}
	if err != nil {
		s.log.Error("building DSN failed", "queue_id", m.id, "err", err)
		return
	}
	id := s.newQueueID()
	s.stats.dsns.Add(1)
	s.log.Info("DSN queued", "queue_id", id, "original_queue_id", m.id, "to", m.from)
	s.queue.enqueue(&queuedMessage{id: id, data: dsn, arrival: now}, []string{m.from})
}

// buildDSN writes an RFC 3464 delivery status notification: a
// multipart/report with a human-readable part, the message/delivery-status
// part and the original message's header (RFC 6522 text/rfc822-headers), so
// the original Message-ID and X-Otpprobe-Id can be correlated.
func (s *Server) buildDSN(m *queuedMessage, failed []rcptStatus, now time.Time) ([]byte, error) {
	origHeader, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(m.data)))
	if err != nil {
		return nil, fmt.Errorf("dsn: original header: %w", err)
	}
	orig := mail.Header{Header: message.Header{Header: origHeader}}
	subject, _ := orig.Subject()

	var h mail.Header
	h.SetDate(now)
	if err := h.GenerateMessageIDWithHostname(s.cfg.Hostname); err != nil {
		return nil, err
	}
	to := []*mail.Address{{Address: m.from}}
	h.SetAddressList("To", to)
	if s.cfg.Style == StyleM365 {
		h.SetAddressList("From", []*mail.Address{{Name: "Microsoft Outlook", Address: "postmaster@" + s.cfg.AllowedFromDomain}})
		h.SetSubject("Undeliverable: " + subject)
	} else {
		h.SetAddressList("From", []*mail.Address{{Name: "Mail Delivery System", Address: "MAILER-DAEMON@" + s.cfg.Hostname}})
		h.SetSubject("Undelivered Mail Returned to Sender")
	}
	if id, err := orig.MessageID(); err == nil && id != "" {
		h.SetMsgIDList("In-Reply-To", []string{id})
		h.SetMsgIDList("References", []string{id})
	}
	h.Set("Auto-Submitted", "auto-replied")
	h.SetContentType("multipart/report", map[string]string{"report-type": "delivery-status"})

	var buf bytes.Buffer
	w, err := message.CreateWriter(&buf, h.Header)
	if err != nil {
		return nil, err
	}
	parts := []struct {
		contentType string
		params      map[string]string
		cte         string
		body        []byte
	}{
		{"text/plain", map[string]string{"charset": "utf-8"}, "quoted-printable", []byte(s.humanReport(failed))},
		{"message/delivery-status", nil, "7bit", s.deliveryStatus(m, failed, now)},
		{"text/rfc822-headers", nil, "7bit", headerBytes(m.data)},
	}
	for _, p := range parts {
		var ph message.Header
		ph.SetContentType(p.contentType, p.params)
		ph.Set("Content-Transfer-Encoding", p.cte)
		pw, err := w.CreatePart(ph)
		if err != nil {
			return nil, err
		}
		if _, err := pw.Write(p.body); err != nil {
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

func (s *Server) humanReport(failed []rcptStatus) string {
	var b strings.Builder
	if s.cfg.Style == StyleM365 {
		b.WriteString("Delivery has failed to these recipients or groups:\r\n\r\n")
		for _, f := range failed {
			fmt.Fprintf(&b, "%s\r\n", f.rcpt)
		}
		fmt.Fprintf(&b, "\r\nDiagnostic information for administrators:\r\n\r\nGenerating server: %s\r\n\r\n", s.cfg.Hostname)
		for _, f := range failed {
			fmt.Fprintf(&b, "%s\r\n", f.rcpt)
			if f.err.RemoteMTA != "" {
				fmt.Fprintf(&b, "%s\r\n", f.err.RemoteMTA)
			}
			fmt.Fprintf(&b, "Remote server returned '%s'\r\n\r\n", f.err.summary())
		}
		return b.String()
	}
	fmt.Fprintf(&b, "This is the mail system at host %s.\r\n\r\n", s.cfg.Hostname)
	b.WriteString("I'm sorry to have to inform you that your message could not\r\n" +
		"be delivered to one or more recipients. It's attached below.\r\n\r\n")
	for _, f := range failed {
		fmt.Fprintf(&b, "<%s>: %s\r\n", f.rcpt, f.err.summary())
	}
	return b.String()
}

// summary is the reply, or the local reason when there was none.
func (e *DeliveryError) summary() string {
	if e.Code != 0 {
		return e.reply()
	}
	return e.Error()
}

func (s *Server) deliveryStatus(m *queuedMessage, failed []rcptStatus, now time.Time) []byte {
	var b bytes.Buffer
	field := func(k, v string) {
		if v == "" {
			return
		}
		if len(v) > 900 { // keep every line under the 998-octet limit
			v = v[:900]
		}
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	field("Reporting-MTA", "dns; "+s.cfg.Hostname)
	field("X-Otpprobe-Lab-Queue-ID", m.id)
	field("Arrival-Date", m.arrival.UTC().Format(time.RFC1123Z))
	for _, f := range failed {
		b.WriteString("\r\n")
		field("Final-Recipient", "rfc822; "+f.rcpt)
		field("Action", "failed")
		field("Status", f.err.Status())
		if f.err.RemoteMTA != "" {
			field("Remote-MTA", "dns; "+f.err.RemoteMTA)
		}
		field("Diagnostic-Code", f.err.Diagnostic())
		field("Last-Attempt-Date", now.UTC().Format(time.RFC1123Z))
	}
	return b.Bytes()
}

// headerBytes is the header section of a CRLF message, blank line included.
func headerBytes(data []byte) []byte {
	if i := bytes.Index(data, []byte("\r\n\r\n")); i >= 0 {
		return data[:i+4]
	}
	return data
}
