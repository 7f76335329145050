package sender_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/lab/dnsserver"
	"github.com/otpprobe/otpprobe/lab/sender"
)

// publishKey publishes the test DKIM key at selector._domainkey.domain.
func (w *world) publishKey(selector, domain string) {
	w.t.Helper()
	rec, err := sender.DKIMRecord(dkimKey(w.t).Public())
	if err != nil {
		w.t.Fatal(err)
	}
	// Long TXT values must be split into 255-octet strings.
	var parts []string
	for len(rec) > 255 {
		parts, rec = append(parts, `"`+rec[:255]+`"`), rec[255:]
	}
	parts = append(parts, `"`+rec+`"`)
	w.dnsAdd(fmt.Sprintf("%s._domainkey.%s. 300 IN TXT %s", selector, domain, strings.Join(parts, " ")))
}

func TestRelaySignsAndDeliversFromSourceIP(t *testing.T) {
	w := newWorld(t)
	gmail := w.mx("gmail.test", "gmail-smtp-in.l.google.test", lab.GmailIP)
	w.publishKey(lab.M365ActiveSelector, lab.CustomerDomain)
	s := w.sender(nil)

	// No Message-ID and no Date: the service adds both.
	msg := canary("relay1", "seed@gmail.test")
	msg = strings.Replace(msg, "Message-ID: <relay1@example-bank.test>\r\n", "", 1)
	msg = strings.Replace(msg, "Date: Mon, 23 Nov 2026 18:00:00 +0000\r\n", "", 1)
	if _, err := send(w.submitClient(s), lab.OTPFrom, []string{"seed@gmail.test"}, msg); err != nil {
		t.Fatal(err)
	}

	got := gmail.wait(t, 1)
	if got.remoteIP != lab.M365IP {
		t.Errorf("receiver saw the relay from %s, want %s", got.remoteIP, lab.M365IP)
	}
	if got.helo != testHostname || !got.tls {
		t.Errorf("relay session: EHLO %q tls=%v, want EHLO %q over TLS", got.helo, got.tls, testHostname)
	}
	if got.from != lab.OTPFrom || len(got.rcpts) != 1 || got.rcpts[0] != "seed@gmail.test" {
		t.Errorf("envelope = %q -> %v", got.from, got.rcpts)
	}

	m, err := mail.ReadMessage(bytes.NewReader(got.data))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("Message-Id") == "" || m.Header.Get("Date") == "" {
		t.Errorf("Message-ID %q / Date %q not added", m.Header.Get("Message-Id"), m.Header.Get("Date"))
	}
	rcv := m.Header.Get("Received")
	if !strings.Contains(rcv, "by "+testHostname) || !strings.Contains(rcv, "[127.0.0.1])") ||
		!strings.Contains(rcv, "with ESMTPSA") {
		t.Errorf("Received = %q", rcv)
	}
	if _, err := mail.ParseDate(rcv[strings.LastIndex(rcv, ";")+1:]); err != nil {
		t.Errorf("Received timestamp: %v", err)
	}

	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(got.data), &dkim.VerifyOptions{
		LookupTXT: func(d string) ([]string, error) { return w.resolver.LookupTXT(context.Background(), d) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(verifs) != 1 || verifs[0].Err != nil || verifs[0].Domain != lab.CustomerDomain {
		t.Fatalf("DKIM verifications = %+v", verifs)
	}
	for _, k := range []string{"from", "subject", "date", "message-id", "to"} {
		if !containsFold(verifs[0].HeaderKeys, k) {
			t.Errorf("signature does not cover %s (h=%v)", k, verifs[0].HeaderKeys)
		}
	}
	sig := m.Header.Get("Dkim-Signature")
	if !strings.Contains(sig, "c=relaxed/relaxed") || !strings.Contains(sig, "s=selector1") {
		t.Errorf("DKIM-Signature = %q", sig)
	}
	eventually(t, "queue drained", func() bool { return s.QueueLen() == 0 })
	if st := s.Stats(); st.Submitted != 1 || st.Relayed != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func containsFold(l []string, s string) bool {
	for _, x := range l {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func TestRelayBackupSourceIPAndSeveralDomains(t *testing.T) {
	w := newWorld(t)
	gmail := w.mx("gmail.test", "gmail-smtp-in.l.google.test", lab.GmailIP)
	yahoo := w.mx("yahoo.test", "mta5.am0.yahoodns.test", lab.YahooIP)
	s := w.sender(func(c *sender.Config) {
		c.Name, c.ListenAddr, c.SourceIP, c.Style = lab.SenderBackup, lab.BackupIP+":0", lab.BackupIP, sender.StyleRelay
	})
	to := []string{"seed@gmail.test", "other@gmail.test", "seed@yahoo.test"}
	if _, err := send(w.submitClient(s), lab.OTPFrom, to, canary("multi", "seed@gmail.test")); err != nil {
		t.Fatal(err)
	}
	g, y := gmail.wait(t, 1), yahoo.wait(t, 1)
	if g.remoteIP != lab.BackupIP || y.remoteIP != lab.BackupIP {
		t.Errorf("relay source %s / %s, want %s", g.remoteIP, y.remoteIP, lab.BackupIP)
	}
	if len(g.rcpts) != 2 || len(y.rcpts) != 1 {
		t.Errorf("one transaction per domain expected: gmail %v, yahoo %v", g.rcpts, y.rcpts)
	}
}

// TestRelayFallsBackToSecondMX: the preferred MX refuses connections.
func TestRelayMXPreferenceAndFallback(t *testing.T) {
	w := newWorld(t)
	w.dnsAdd(
		"outlook.test. 300 IN MX 5 mx1.outlook.test.",
		"mx1.outlook.test. 300 IN A 127.0.0.231", // nothing listens there
		"outlook.test. 300 IN MX 10 mx2.outlook.test.",
		"mx2.outlook.test. 300 IN A "+lab.OutlookIP,
	)
	backup := w.listen("mx2.outlook.test", lab.OutlookIP)
	s := w.sender(nil)
	if _, err := send(w.submitClient(s), lab.OTPFrom, []string{"seed@outlook.test"}, canary("fb", "seed@outlook.test")); err != nil {
		t.Fatal(err)
	}
	backup.wait(t, 1)
	if st := s.Stats(); st.Deferred != 0 {
		t.Errorf("fallback to the second MX should not defer: %+v", st)
	}
}

// TestRelayImplicitMX: no MX record, so the domain's A record is used
// (RFC 5321 §5.1).
func TestRelayImplicitMX(t *testing.T) {
	w := newWorld(t)
	w.dnsAdd("noimx.test. 300 IN A " + lab.YahooIP)
	r := w.listen("noimx.test", lab.YahooIP)
	s := w.sender(nil)
	if _, err := send(w.submitClient(s), lab.OTPFrom, []string{"u@noimx.test"}, canary("imx", "u@noimx.test")); err != nil {
		t.Fatal(err)
	}
	r.wait(t, 1)
}

func TestRelayRetriesTemporaryFailures(t *testing.T) {
	w := newWorld(t)
	outlook := w.mx("outlook.test", "outlook-com.olc.protection.outlook.test", lab.OutlookIP)
	greylist := &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Greylisted, try again later"}
	outlook.set(func(r *receiver) { r.dataErrs = []error{greylist, greylist} })
	s := w.sender(nil)
	if _, err := send(w.submitClient(s), lab.OTPFrom, []string{"seed@outlook.test"}, canary("grey", "seed@outlook.test")); err != nil {
		t.Fatal(err)
	}
	outlook.wait(t, 1)
	eventually(t, "queue drained", func() bool { return s.QueueLen() == 0 })
	if st := s.Stats(); st.Deferred != 2 || st.Relayed != 1 || st.Bounced != 0 {
		t.Errorf("stats = %+v, want 2 deferred, 1 relayed, 0 bounced", st)
	}
}

// TestRelayRejectsWrongCertificate: TLS is verified against the MX name, so
// a receiver whose certificate names another host gets no mail.
func TestRelayVerifiesTLS(t *testing.T) {
	w := newWorld(t)
	w.dnsAdd("gmail.test. 300 IN MX 10 gmail-smtp-in.l.google.test.",
		"gmail-smtp-in.l.google.test. 300 IN A "+lab.GmailIP)
	impostor := w.listen("impostor.test", lab.GmailIP)
	s := w.sender(nil)
	if _, err := send(w.submitClient(s), lab.OTPFrom, []string{"seed@gmail.test"}, canary("tls", "seed@gmail.test")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a deferral", func() bool { return s.Stats().Deferred > 0 })
	if impostor.count() != 0 {
		t.Error("message delivered to a host with the wrong certificate")
	}
	if !strings.Contains(w.logs.String(), "stage=tls") && !strings.Contains(w.logs.String(), "relay tls") {
		t.Errorf("deferral not attributed to TLS; logs:\n%s", w.logs.String())
	}
}

// TestRelayDefersOnDNSFailure: SERVFAIL for the recipient domain defers;
// once DNS answers again the message goes out.
func TestRelayDefersOnDNSFailure(t *testing.T) {
	w := newWorld(t)
	gmail := w.mx("gmail.test", "gmail-smtp-in.l.google.test", lab.GmailIP)
	w.dns.SetFault("gmail.test", dnsserver.FaultServfail)
	s := w.sender(nil)
	if _, err := send(w.submitClient(s), lab.OTPFrom, []string{"seed@gmail.test"}, canary("dns", "seed@gmail.test")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a deferral", func() bool { return s.Stats().Deferred > 0 })
	w.dns.SetFault("gmail.test", dnsserver.FaultNone)
	gmail.wait(t, 1)
	if s.Stats().Bounced != 0 {
		t.Error("a DNS SERVFAIL bounced the message")
	}
}

// TestCloseDoesNotHangOnSilentMX: an MX that accepts TCP and never speaks
// must not keep Close waiting (the attempt's connection is closed).
func TestCloseDoesNotHangOnSilentMX(t *testing.T) {
	w := newWorld(t)
	w.dnsAdd("silent.test. 300 IN MX 10 mx.silent.test.", "mx.silent.test. 300 IN A 127.0.0.24")
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.24", strconv.Itoa(w.port)))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	s := w.sender(nil)
	if _, err := send(w.submitClient(s), lab.OTPFrom, []string{"u@silent.test"}, canary("silent", "u@silent.test")); err != nil {
		t.Fatal(err)
	}
	c := <-accepted
	defer c.Close()
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second): // hang guard
		t.Fatal("Close blocked on an in-flight delivery")
	}
}
