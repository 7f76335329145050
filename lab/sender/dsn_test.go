package sender_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/mail"
	"strings"
	"testing"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-smtp"
	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/lab/sender"
)

// parsedDSN is a DSN read back with go-message, the way a bounce watcher
// would.
type parsedDSN struct {
	header     message.Header
	human      string
	perMessage textproto.Header
	perRcpt    []textproto.Header
	original   textproto.Header // text/rfc822-headers
}

func parseDSN(t *testing.T, raw []byte) parsedDSN {
	t.Helper()
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var d parsedDSN
	d.header = e.Header
	mt, params, _ := e.Header.ContentType()
	if mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("DSN Content-Type %s %v", mt, params)
	}
	mr := e.MultipartReader()
	var types []string
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pt, _, _ := p.Header.ContentType()
		types = append(types, pt)
		body, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatal(err)
		}
		switch pt {
		case "text/plain":
			d.human = string(body)
		case "message/delivery-status":
			br := bufio.NewReader(bytes.NewReader(body))
			if d.perMessage, err = textproto.ReadHeader(br); err != nil {
				t.Fatal(err)
			}
			for {
				if _, err := br.Peek(1); err != nil {
					break
				}
				h, err := textproto.ReadHeader(br)
				if err != nil {
					t.Fatal(err)
				}
				d.perRcpt = append(d.perRcpt, h)
			}
		case "text/rfc822-headers":
			if d.original, err = textproto.ReadHeader(bufio.NewReader(bytes.NewReader(body))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if strings.Join(types, ",") != "text/plain,message/delivery-status,text/rfc822-headers" {
		t.Fatalf("DSN parts %v", types)
	}
	return d
}

func TestPermanentFailureSendsDSN(t *testing.T) {
	w := newWorld(t)
	gmail := w.mx("gmail.test", "gmail-smtp-in.l.google.test", lab.GmailIP)
	bank := w.mx(lab.CustomerDomain, "mx.example-bank.test", lab.BankMXIP)
	gmail.set(func(r *receiver) {
		r.rcptErr["nobody@gmail.test"] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1},
			Message: "The email account that you tried to reach does not exist."}
		r.dataErr = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 26},
			Message: "Unauthenticated email from example-bank.test is not accepted due to domain's DMARC policy."}
	})
	s := w.sender(nil)
	if _, err := send(w.submitClient(s), lab.BounceAddress, []string{"seed@gmail.test", "nobody@gmail.test"},
		canary("perm1", "seed@gmail.test")); err != nil {
		t.Fatal(err)
	}

	got := bank.wait(t, 1)
	if got.from != "" || len(got.rcpts) != 1 || got.rcpts[0] != lab.BounceAddress {
		t.Fatalf("DSN envelope %q -> %v, want <> -> %s", got.from, got.rcpts, lab.BounceAddress)
	}
	if got.remoteIP != lab.M365IP {
		t.Errorf("DSN relayed from %s, want %s", got.remoteIP, lab.M365IP)
	}
	d := parseDSN(t, got.data)
	if subj, _ := d.header.Text("Subject"); !strings.HasPrefix(subj, "Undeliverable: Your verification code [perm1]") {
		t.Errorf("Subject %q", subj)
	}
	if d.header.Get("Auto-Submitted") != "auto-replied" {
		t.Errorf("Auto-Submitted %q", d.header.Get("Auto-Submitted"))
	}
	if d.perMessage.Get("Reporting-Mta") != "dns; "+testHostname {
		t.Errorf("Reporting-MTA %q", d.perMessage.Get("Reporting-Mta"))
	}
	if _, err := mail.ParseDate(d.perMessage.Get("Arrival-Date")); err != nil {
		t.Errorf("Arrival-Date: %v", err)
	}
	want := map[string][2]string{
		"rfc822; seed@gmail.test":   {"5.7.26", "smtp; 550 5.7.26 Unauthenticated email from example-bank.test is not accepted due to domain's DMARC policy."},
		"rfc822; nobody@gmail.test": {"5.1.1", "smtp; 550 5.1.1 The email account that you tried to reach does not exist."},
	}
	if len(d.perRcpt) != len(want) {
		t.Fatalf("%d recipient blocks, want %d", len(d.perRcpt), len(want))
	}
	for _, h := range d.perRcpt {
		fr := h.Get("Final-Recipient")
		wv, ok := want[fr]
		if !ok {
			t.Errorf("unexpected Final-Recipient %q", fr)
			continue
		}
		if h.Get("Action") != "failed" || h.Get("Status") != wv[0] || h.Get("Diagnostic-Code") != wv[1] ||
			h.Get("Remote-Mta") != "dns; gmail-smtp-in.l.google.test" {
			t.Errorf("%s: Action %q Status %q Diagnostic-Code %q Remote-MTA %q", fr,
				h.Get("Action"), h.Get("Status"), h.Get("Diagnostic-Code"), h.Get("Remote-Mta"))
		}
		if _, err := mail.ParseDate(h.Get("Last-Attempt-Date")); err != nil {
			t.Errorf("Last-Attempt-Date: %v", err)
		}
	}
	if d.original.Get("X-Otpprobe-Id") != "perm1" || d.original.Get("Message-Id") != "<perm1@example-bank.test>" {
		t.Errorf("original headers: X-Otpprobe-Id %q Message-ID %q", d.original.Get("X-Otpprobe-Id"), d.original.Get("Message-Id"))
	}
	if !strings.Contains(d.human, "550 5.7.26") {
		t.Errorf("human-readable part lacks the reply:\n%s", d.human)
	}
	eventually(t, "queue drained", func() bool { return s.QueueLen() == 0 })
	if st := s.Stats(); st.Bounced != 2 || st.DSNs != 1 || st.Deferred != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestRetryExpirySendsDSN(t *testing.T) {
	w := newWorld(t)
	outlook := w.mx("outlook.test", "outlook-com.olc.protection.outlook.test", lab.OutlookIP)
	bank := w.mx(lab.CustomerDomain, "mx.example-bank.test", lab.BankMXIP)
	outlook.set(func(r *receiver) {
		r.dataErr = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 500}, Message: "Server busy. Please try again later."}
	})
	s := w.sender(func(c *sender.Config) { c.RetryExpiry = 300e6 }) // 300ms, RetryInterval 20ms
	if _, err := send(w.submitClient(s), lab.OTPFrom, []string{"seed@outlook.test"}, canary("exp1", "seed@outlook.test")); err != nil {
		t.Fatal(err)
	}
	d := parseDSN(t, bank.wait(t, 1).data)
	if len(d.perRcpt) != 1 {
		t.Fatalf("%d recipient blocks", len(d.perRcpt))
	}
	h := d.perRcpt[0]
	if h.Get("Action") != "failed" || h.Get("Status") != "4.7.500" ||
		h.Get("Diagnostic-Code") != "smtp; 451 4.7.500 Server busy. Please try again later." {
		t.Errorf("Action %q Status %q Diagnostic-Code %q", h.Get("Action"), h.Get("Status"), h.Get("Diagnostic-Code"))
	}
	if st := s.Stats(); st.Deferred < 2 || st.Bounced != 1 {
		t.Errorf("stats = %+v, want several deferrals then one bounce", st)
	}
}

func TestNullMXBouncesAtOnce(t *testing.T) {
	w := newWorld(t)
	bank := w.mx(lab.CustomerDomain, "mx.example-bank.test", lab.BankMXIP)
	w.dnsAdd("nomail.test. 300 IN MX 0 .")
	s := w.sender(nil)
	if _, err := send(w.submitClient(s), lab.OTPFrom, []string{"x@nomail.test"}, canary("null", "x@nomail.test")); err != nil {
		t.Fatal(err)
	}
	d := parseDSN(t, bank.wait(t, 1).data)
	if st := d.perRcpt[0].Get("Status"); st != "5.1.10" {
		t.Errorf("Status %q, want 5.1.10 (RFC 7505)", st)
	}
	if s.Stats().Deferred != 0 {
		t.Error("null MX was retried")
	}
}

// TestNoDSNForDSN: the original sender's MX rejects the DSN; that failure
// must not produce another DSN.
func TestNoDSNForDSN(t *testing.T) {
	w := newWorld(t)
	gmail := w.mx("gmail.test", "gmail-smtp-in.l.google.test", lab.GmailIP)
	bank := w.mx(lab.CustomerDomain, "mx.example-bank.test", lab.BankMXIP)
	reject := &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "No"}
	gmail.set(func(r *receiver) { r.dataErr = reject })
	bank.set(func(r *receiver) { r.dataErr = reject })
	s := w.sender(nil)
	if _, err := send(w.submitClient(s), lab.OTPFrom, []string{"seed@gmail.test"}, canary("loop", "seed@gmail.test")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both bounces", func() bool { return s.Stats().Bounced == 2 })
	eventually(t, "queue drained", func() bool { return s.QueueLen() == 0 })
	if st := s.Stats(); st.DSNs != 1 {
		t.Errorf("DSNs = %d, want 1 (none about the DSN)", st.DSNs)
	}
}
