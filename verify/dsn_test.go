package verify

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseDSNRealBounces(t *testing.T) {
	tests := []struct {
		file                                   string
		format, reportingMTA                   string
		rcpt, action, status, diagPart, remote string
		msgID                                  string
		failed                                 bool
		errors                                 bool
	}{
		{
			file: "gmail-group-rejected-spam.eml", format: "rfc3464", reportingMTA: "googlemail.com",
			rcpt: "kijitora@example.com", action: "failed", status: "5.0.0", diagPart: "rejected due to spam classification",
			msgID: "<160000000000.2022.837987497898796986@NEKO-NYAAN-22>", failed: true,
		},
		{
			file: "gmail-legacy-text.eml", format: "text",
			rcpt: "neko-nyaan@google.example.com", action: "failed", diagPart: "Storage quota exceeded",
			msgID: "<20170429233445.9C8036C2E7D8@mail.example.com>", failed: true,
		},
		{
			file: "outlook-com-mailbox-full.eml", format: "rfc3464", reportingMTA: "BLU004-OMC3S13.hotmail.com",
			rcpt: "kijitora@example.jp", action: "failed", status: "5.2.2", diagPart: "550 5.2.2 <kijitora@example.jp>... Mailbox Full",
			msgID: "<BLU436-SMTP6645ECA6E7FEFFE86D040BBA770@phx.gbl>", failed: true,
		},
		{
			// The returned message is a placeholder line, not a header: the
			// report is still read and the problem listed.
			file: "postfix-to-exchange-online-rcpt-rejected.eml", format: "rfc3464", reportingMTA: "here-redacted.net.br",
			rcpt: "kijitora@example.br", action: "failed", status: "5.4.1", diagPart: "Recipient address rejected: Access denied",
			remote: "here-redacted-br.mail.protection.outlook.com", failed: true, errors: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", "dsn", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			d, err := ParseDSN(f)
			if err != nil {
				t.Fatalf("ParseDSN: %v", err)
			}
			if d.Format != tt.format || d.ReportingMTA != tt.reportingMTA || d.OriginalMessageID != tt.msgID || d.Failed() != tt.failed {
				t.Errorf("dsn = %+v", d)
			}
			if len(d.Recipients) != 1 {
				t.Fatalf("recipients = %+v", d.Recipients)
			}
			r := d.Recipients[0]
			if r.FinalRecipient != tt.rcpt || r.Action != tt.action || r.Status != tt.status || r.RemoteMTA != tt.remote ||
				!strings.Contains(r.DiagnosticCode, tt.diagPart) {
				t.Errorf("recipient = %+v", r)
			}
			if (len(d.Errors) > 0) != tt.errors {
				t.Errorf("errors = %q", d.Errors)
			}
		})
	}
}

// canaryBounce is the shape Exchange Online sends when a receiver
// rejects a canary for DMARC; the returned headers carry our id.
const canaryBounce = "From: postmaster@contoso.onmicrosoft.com\r\n" +
	"To: otp@contoso.example\r\n" +
	"Subject: Undeliverable: Your verification code\r\n" +
	"Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"ndr\"\r\n" +
	"X-MS-Exchange-Message-Is-Ndr:\r\n" +
	"MIME-Version: 1.0\r\n\r\n" +
	"--ndr\r\nContent-Type: text/html; charset=\"us-ascii\"\r\n\r\n<p>Your message couldn't be delivered.</p>\r\n" +
	"--ndr\r\nContent-Type: message/delivery-status\r\n\r\n" +
	"Reporting-MTA: dns;BN0PR00MB0000.namprd00.prod.outlook.com\r\n" +
	"Received-From-MTA: dns;BN0PR00MB0000.namprd00.prod.outlook.com\r\n" +
	"Arrival-Date: Mon, 23 Nov 2026 18:00:00 +0000\r\n\r\n" +
	"Final-Recipient: rfc822;seed@gmail.example\r\n" +
	"Action: failed\r\n" +
	"Status: 5.7.26 (unauthenticated)\r\n" +
	"Remote-MTA: dns;mx.gmail.example\r\n" +
	"Diagnostic-Code: smtp;550-5.7.26 Unauthenticated email from contoso.example is not accepted\r\n" +
	" due to domain's DMARC policy.\r\n\r\n" +
	"Final-Recipient: rfc822;other@yahoo.example\r\n" +
	"Action: delayed\r\n" +
	"Status: 4.4.7\r\n\r\n" +
	"--ndr\r\nContent-Type: text/rfc822-headers\r\n\r\n" +
	"Message-ID: <01JD8X@contoso.example>\r\n" +
	"X-Otpprobe-Id: 01JD8XQ3N2\r\n" +
	"Subject: Your verification code 01JD8XQ3N2\r\n\r\n" +
	"--ndr--\r\n"

func TestParseDSNCorrelatesCanary(t *testing.T) {
	d, err := ParseDSN(strings.NewReader(canaryBounce))
	if err != nil {
		t.Fatal(err)
	}
	if d.OriginalProbeID != "01JD8XQ3N2" || d.OriginalMessageID != "<01JD8X@contoso.example>" || d.OriginalSubject != "Your verification code 01JD8XQ3N2" {
		t.Errorf("original = %q %q %q", d.OriginalProbeID, d.OriginalMessageID, d.OriginalSubject)
	}
	if len(d.Recipients) != 2 || d.Recipients[0].Status != "5.7.26" || d.Recipients[1].Action != "delayed" {
		t.Fatalf("recipients = %+v", d.Recipients)
	}
	if !strings.Contains(d.Recipients[0].DiagnosticCode, "due to domain's DMARC policy") || d.Recipients[0].RemoteMTA != "mx.gmail.example" {
		t.Errorf("recipient = %+v", d.Recipients[0])
	}
	if d.ArrivalDate != "Mon, 23 Nov 2026 18:00:00 +0000" || len(d.Errors) != 0 {
		t.Errorf("dsn = %+v", d)
	}
}

func TestParseDSNTextBounceQuotesCanary(t *testing.T) {
	msg := "From: MAILER-DAEMON@relay.example\nReturn-Path: <>\nSubject: failure notice\n\n" +
		"Hi. This is the qmail-send program at relay.example.\n" +
		"<seed@outlook.example>:\n192.0.2.7 does not like recipient.\nRemote host said: 550 5.7.1 Service unavailable; client host blocked\n\n" +
		"--- Below this line is a copy of the message.\n\n" +
		"Message-ID: <abc@sender.example>\nX-Otpprobe-Id: 01JD8Y\nSubject: x\n\nYour code is 123456\n"
	d, err := ParseDSN(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if d.Format != "text" || d.OriginalProbeID != "01JD8Y" || d.OriginalMessageID != "<abc@sender.example>" {
		t.Errorf("dsn = %+v", d)
	}
	if len(d.Recipients) != 1 || d.Recipients[0].Status != "5.7.1" || !d.Failed() {
		t.Errorf("recipients = %+v", d.Recipients)
	}
}

func TestParseDSNRejectsOrdinaryMail(t *testing.T) {
	canary := "From: otp@contoso.example\nSubject: Your verification code is 483920\nX-Otpprobe-Id: 01JD8Z\n" +
		"Content-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: text/plain\n\nmail delivery failed? no: 550 5.1.1 in text\n--b--\n"
	if _, err := ParseDSN(strings.NewReader(canary)); !errors.Is(err, ErrNotDSN) {
		t.Errorf("canary parsed as DSN: %v", err)
	}
	if IsDSN(header(t, canary)) {
		t.Error("IsDSN(canary) = true")
	}
	// A report that is not about delivery (ARF abuse report) is no DSN.
	arf := "From: abuse@example.net\nContent-Type: multipart/report; report-type=feedback-report; boundary=x\n\n--x--\n"
	if IsDSN(header(t, arf)) {
		t.Error("IsDSN(ARF) = true")
	}
	if _, err := ParseDSN(strings.NewReader("\x00\x01 not a message")); err == nil {
		t.Error("garbage accepted")
	}
}

func TestIsDSN(t *testing.T) {
	for _, block := range []string{
		"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n",
		"Content-Type: Multipart/Report; Report-Type=\"Delivery-Status\"; boundary=x\n\n",
		"From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\nSubject: Delivery Status Notification (Failure)\n\n",
		"From: postmaster@contoso.onmicrosoft.com\nSubject: Undeliverable: Your code\n\n",
		"From: x@y\nX-MS-Exchange-Message-Is-Ndr: \n\n",
		"Return-Path: <>\nFrom: MAILER-DAEMON@relay.example\nSubject: Undelivered Mail Returned to Sender\n\n",
	} {
		if !IsDSN(header(t, block)) {
			t.Errorf("IsDSN(%q) = false", block)
		}
	}
}
