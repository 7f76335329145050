package verify

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"regexp"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// DSN is a delivery status notification (RFC 3464, carried in an RFC 6522
// multipart/report), or a non-standard bounce read heuristically.
type DSN struct {
	// Format is "rfc3464" when a message/delivery-status part was read,
	// "text" when the status had to be scraped from a human-readable body.
	Format       string         `json:"format"`
	ReportingMTA string         `json:"reporting_mta,omitempty"`
	ArrivalDate  string         `json:"arrival_date,omitempty"`
	Recipients   []DSNRecipient `json:"recipients"`
	// The original message, from its text/rfc822-headers or message/rfc822
	// part (or its headers quoted in a text bounce).
	OriginalMessageID string `json:"original_message_id,omitempty"`
	OriginalProbeID   string `json:"original_probe_id,omitempty"` // X-Otpprobe-Id
	OriginalSubject   string `json:"original_subject,omitempty"`
	// Errors are parts that could not be read; the rest was kept.
	Errors []string `json:"errors,omitempty"`
}

// DSNRecipient is one per-recipient block.
type DSNRecipient struct {
	FinalRecipient    string `json:"final_recipient,omitempty"`
	OriginalRecipient string `json:"original_recipient,omitempty"`
	Action            string `json:"action,omitempty"` // failed, delayed, delivered, relayed, expanded
	Status            string `json:"status,omitempty"` // enhanced status code, e.g. 5.7.509
	DiagnosticCode    string `json:"diagnostic_code,omitempty"`
	RemoteMTA         string `json:"remote_mta,omitempty"`
	LastAttemptDate   string `json:"last_attempt_date,omitempty"`
}

// Failed reports whether the DSN says delivery failed for any recipient.
func (d *DSN) Failed() bool {
	for _, r := range d.Recipients {
		if strings.EqualFold(r.Action, "failed") || strings.HasPrefix(r.Status, "5.") {
			return true
		}
	}
	return false
}

// ErrNotDSN is returned by ParseDSN for a message that is no bounce.
var ErrNotDSN = errors.New("not a delivery status notification")

// maxDSNPart bounds how much of one MIME part is read: a DSN's useful
// parts are small; a returned message/rfc822 may be large and only its
// header is needed.
const maxDSNPart = 1 << 20

var bounceSubject = regexp.MustCompile(`(?i)^(undeliverable|undelivered mail returned to sender|delivery status notification \((failure|delay)\)|mail delivery failed|failure notice|returned mail|delivery failure|message not delivered|mail delivery subsystem)`)

// IsDSN reports whether a header block belongs to a bounce: an RFC 6522
// report of type delivery-status, or a message from the mailer daemon
// (null return path or MAILER-DAEMON/postmaster sender) with a bounce
// subject — the form Microsoft's and Gmail's human-readable NDRs
// share with older MTAs.
func IsDSN(h textproto.Header) bool {
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err == nil && mt == "multipart/report" {
		rt := strings.ToLower(params["report-type"])
		return rt == "delivery-status" || rt == "global-delivery-status"
	}
	if h.Has("X-Ms-Exchange-Message-Is-Ndr") {
		return true
	}
	from := strings.ToLower(h.Get("From"))
	daemon := strings.TrimSpace(h.Get("Return-Path")) == "<>" ||
		strings.Contains(from, "mailer-daemon") || strings.Contains(from, "postmaster")
	return daemon && bounceSubject.MatchString(strings.TrimSpace(h.Get("Subject")))
}

// ParseDSN reads a whole bounce message. It walks the MIME tree for the
// message/delivery-status part and the returned headers; when there is
// none (a plain-text bounce), it scrapes status codes and quoted headers
// from the text. A message that is no bounce yields ErrNotDSN.
func ParseDSN(r io.Reader) (*DSN, error) {
	e, err := message.Read(r)
	if err != nil && e == nil {
		return nil, fmt.Errorf("dsn: %w", err)
	}
	if !IsDSN(e.Header.Header) {
		return nil, ErrNotDSN
	}
	d := &DSN{Recipients: []DSNRecipient{}}
	var texts [][]byte
	werr := e.Walk(func(_ []int, part *message.Entity, err error) error {
		if err != nil && part == nil {
			d.Errors = append(d.Errors, err.Error())
			return nil
		}
		mt, _, _ := part.Header.ContentType()
		switch mt {
		case "message/delivery-status", "message/global-delivery-status":
			d.Format = "rfc3464"
			if err := d.readStatus(io.LimitReader(part.Body, maxDSNPart)); err != nil {
				d.Errors = append(d.Errors, err.Error())
			}
		case "text/rfc822-headers", "message/rfc822", "message/global", "message/global-headers":
			oh, err := textproto.ReadHeader(bufio.NewReader(io.LimitReader(part.Body, maxDSNPart)))
			if err != nil && oh.Len() == 0 {
				d.Errors = append(d.Errors, fmt.Sprintf("returned headers: %v", err))
			}
			d.original(oh)
		case "text/plain", "text/html", "":
			b, _ := io.ReadAll(io.LimitReader(part.Body, maxDSNPart))
			texts = append(texts, b)
		}
		return nil
	})
	if werr != nil {
		d.Errors = append(d.Errors, werr.Error())
	}
	for _, t := range texts {
		d.scrape(t, e.Header.Get("X-Failed-Recipients"))
	}
	if d.Format == "" {
		d.Format = "text"
	}
	return d, nil
}

// readStatus parses the message/delivery-status body: a per-message
// block, then one block per recipient, separated by blank lines.
func (d *DSN) readStatus(r io.Reader) error {
	br := bufio.NewReader(r)
	first := true
	for {
		// Tolerate extra blank lines between blocks.
		for {
			b, err := br.Peek(1)
			if err != nil {
				return nil
			}
			if b[0] != '\r' && b[0] != '\n' {
				break
			}
			br.ReadByte()
		}
		h, err := textproto.ReadHeader(br)
		if h.Len() > 0 {
			if first && h.Get("Final-Recipient") == "" {
				d.ReportingMTA = typedValue(h.Get("Reporting-MTA"))
				d.ArrivalDate = h.Get("Arrival-Date")
				// Gmail names the bounced message here too.
				if d.OriginalMessageID == "" {
					d.OriginalMessageID = strings.TrimSpace(h.Get("X-Original-Message-Id"))
				}
			} else {
				d.Recipients = append(d.Recipients, DSNRecipient{
					FinalRecipient:    typedValue(h.Get("Final-Recipient")),
					OriginalRecipient: typedValue(h.Get("Original-Recipient")),
					Action:            strings.ToLower(strings.TrimSpace(h.Get("Action"))),
					Status:            statusCode(h.Get("Status")),
					DiagnosticCode:    typedValue(h.Get("Diagnostic-Code")),
					RemoteMTA:         typedValue(h.Get("Remote-MTA")),
					LastAttemptDate:   h.Get("Last-Attempt-Date"),
				})
			}
			first = false
		}
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("delivery-status: %w", err)
		}
	}
}

// typedValue strips the "rfc822;" / "dns;" / "smtp;" type of a DSN field.
func typedValue(v string) string {
	v = strings.TrimSpace(v)
	if t, rest, ok := strings.Cut(v, ";"); ok && !strings.ContainsAny(t, " <@") {
		return strings.TrimSpace(rest)
	}
	return v
}

var statusRE = regexp.MustCompile(`\b[245]\.\d{1,3}\.\d{1,3}\b`)

// statusCode keeps the enhanced code of a Status field ("5.1.1 (bad
// destination mailbox)" happens).
func statusCode(v string) string {
	if m := statusRE.FindString(v); m != "" {
		return m
	}
	return strings.TrimSpace(v)
}

func (d *DSN) original(h textproto.Header) {
	if d.OriginalMessageID == "" {
		d.OriginalMessageID = strings.TrimSpace(h.Get("Message-Id"))
	}
	if d.OriginalProbeID == "" {
		d.OriginalProbeID = strings.TrimSpace(h.Get("X-Otpprobe-Id"))
	}
	if d.OriginalSubject == "" {
		d.OriginalSubject = strings.TrimSpace(h.Get("Subject"))
	}
}

var (
	quotedProbeID   = regexp.MustCompile(`(?im)^[ \t>]*X-Otpprobe-Id:[ \t]*(\S+)`)
	quotedMessageID = regexp.MustCompile(`(?im)^[ \t>]*Message-ID:[ \t]*(<[^>\s]+>)`)
	smtpReply       = regexp.MustCompile(`\b([245]\d\d)[ -]([245]\.\d{1,3}\.\d{1,3})\b[^\r\n]*`)
	htmlTag         = regexp.MustCompile(`<[^>]*>`)
	// Phrases of human-readable bounces that carry no status code.
	permanentFailure = regexp.MustCompile(`(?i)failed permanently|permanent (fatal )?error|could not be delivered|couldn't be delivered`)
	technicalDetails = regexp.MustCompile(`(?i)technical details of permanent failure:[ \t]*\r?\n[ \t]*([^\r\n]+)`)
)

// scrape fills what the structured parts did not give from a human-
// readable body: Microsoft and Gmail put the remote server's reply
// ("550 5.7.509 Access denied…") in the text, and plain bounces quote
// the original headers.
func (d *DSN) scrape(b []byte, failed string) {
	if bytes.Contains(b, []byte("<html")) || bytes.Contains(b, []byte("<HTML")) {
		b = htmlTag.ReplaceAll(b, []byte(" "))
	}
	if d.OriginalProbeID == "" {
		if m := quotedProbeID.FindSubmatch(b); m != nil {
			d.OriginalProbeID = string(m[1])
		}
	}
	if d.OriginalMessageID == "" {
		if m := quotedMessageID.FindSubmatch(b); m != nil {
			d.OriginalMessageID = string(m[1])
		}
	}
	if d.Format != "" || len(d.Recipients) > 0 {
		return
	}
	r := DSNRecipient{FinalRecipient: strings.TrimSpace(failed)}
	switch m := smtpReply.FindSubmatch(b); {
	case m != nil:
		r.Action, r.Status = "failed", string(m[2])
		r.DiagnosticCode = strings.Join(strings.Fields(string(m[0])), " ")
		if !strings.HasPrefix(r.Status, "5.") {
			r.Action = "delayed"
		}
	case permanentFailure.Match(b):
		// Older Gmail bounces give no code, only the words and the
		// reason on the line after "Technical details of permanent failure:".
		r.Action = "failed"
		if m := technicalDetails.FindSubmatch(b); m != nil {
			r.DiagnosticCode = strings.TrimSpace(string(m[1]))
		}
	default:
		return
	}
	d.Recipients = append(d.Recipients, r)
}
