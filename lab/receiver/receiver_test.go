package receiver_test

import (
	"net"
	"net/mail"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"

	"github.com/otpprobe/otpprobe/lab/dnsserver"
	"github.com/otpprobe/otpprobe/lab/receiver"
	"github.com/otpprobe/otpprobe/verify"
)

const otpFrom = "otp@" + bankDomain

func profileOf(provider string) receiver.Profile {
	for _, p := range append(receiver.Defaults(), deferringProfile()) {
		if p.Name == provider {
			return p
		}
	}
	panic(provider)
}

func rcptOf(provider string) string { return "seed@" + profileOf(provider).Domain }

// expectation is where a message must land and what the receiver's header
// must say, in that provider's words.
type expectation struct {
	provider string
	code     int               // SMTP reply to DATA; 0 = accepted
	enhanced smtp.EnhancedCode // for code != 0
	folder   imap.MailboxAttr  // "" = INBOX, else the special-use folder
	contains []string          // substrings of the unfolded header block
	// verdicts are spf, dkim, dmarc as the prober's verify package reads
	// them from the header trusted for the provider; nil skips the check.
	verdicts []string
}

func check(t *testing.T, w *world, e expectation, srcIP, mailFrom string, msg []byte) {
	t.Helper()
	before := len(w.stores[e.provider].Deliveries())
	err := w.send(t, e.provider, srcIP, mailFrom, rcptOf(e.provider), msg)
	if e.code != 0 {
		code, enh := smtpCode(err)
		if code != e.code || enh != e.enhanced {
			t.Fatalf("%s: DATA reply %d %v (%v), want %d %v", e.provider, code, enh, err, e.code, e.enhanced)
		}
		if d := w.stores[e.provider].Deliveries(); len(d) != before {
			t.Fatalf("%s: refused message delivered: %+v", e.provider, d[before:])
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: send: %v", e.provider, err)
	}
	c := w.imapDial(t, e.provider, nil)
	folder := folderOf(t, c, e.folder)
	h := unfold(lastHeader(t, c, folder))
	if h == "" {
		other := "INBOX"
		if folder == "INBOX" {
			other = folderOf(t, c, imap.MailboxAttrJunk)
		}
		t.Fatalf("%s: nothing in %s; %s has %q", e.provider, folder, other, unfold(lastHeader(t, c, other)))
	}
	for _, want := range e.contains {
		if !strings.Contains(h, want) {
			t.Errorf("%s (%s): header lacks %q\n%s", e.provider, folder, want, h)
		}
	}
	checkReceivedDate(t, e.provider, h)
	if e.verdicts != nil {
		hdr, err := verify.ReadHeader(strings.NewReader(h + "\r\n"))
		if err != nil {
			t.Fatalf("%s: header does not parse: %v", e.provider, err)
		}
		v := verify.Summarize(hdr, profileOf(e.provider).TrustID())
		got := []string{v.SPF, v.DKIM, v.DMARC}
		if !v.Trusted || !slices.Equal(got, e.verdicts) {
			t.Errorf("%s: verify reads spf/dkim/dmarc %v (trusted %v, errors %v), want %v", e.provider, got, v.Trusted, v.Errors, e.verdicts)
		}
	}
}

// checkReceivedDate parses the topmost Received timestamp (RFC 5322 date
// after the last ";") and checks it is the delivery moment, give or take.
func checkReceivedDate(t *testing.T, provider, h string) {
	t.Helper()
	for _, line := range strings.Split(h, "\r\n") {
		if !strings.HasPrefix(line, "Received: ") {
			continue
		}
		i := strings.LastIndex(line, ";")
		d, err := mail.ParseDate(strings.TrimSpace(line[i+1:]))
		if err != nil {
			t.Fatalf("%s: Received date %q: %v", provider, line[i+1:], err)
		}
		if age := time.Since(d); age < -time.Minute || age > 10*time.Minute {
			t.Errorf("%s: Received date %v is not now", provider, d)
		}
		return
	}
	t.Errorf("%s: no Received header in\n%s", provider, h)
}

func TestAllPass(t *testing.T) {
	w := newWorld(t)
	msg := message(t, bankDomain, "seed", activeSelector, "pass-1")
	for _, e := range []expectation{
		{provider: "gmail", contains: []string{
			"Authentication-Results: mx.google.com; dkim=pass header.i=@example-bank.test header.s=selector1 header.b=",
			"spf=pass (google.com: domain of otp@example-bank.test designates 127.0.0.11 as permitted sender) smtp.mailfrom=otp@example-bank.test",
			"dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=example-bank.test",
			"Received: from mail.example-bank.test (mail.example-bank.test. [127.0.0.11]) by mx.google.com with ESMTPS id ",
			"Received-SPF: pass (google.com: domain of otp@example-bank.test designates 127.0.0.11 as permitted sender) client-ip=127.0.0.11;",
			"X-Otpprobe-Id: pass-1",
		}, verdicts: []string{"pass", "pass", "pass"}},
		{provider: "yahoo", contains: []string{
			"Authentication-Results: " + receiver.YahooAuthservID + "; dkim=pass header.i=@example-bank.test header.s=selector1; spf=pass smtp.mailfrom=example-bank.test; dmarc=pass(p=REJECT) header.from=example-bank.test;",
			"Received: from 127.0.0.11 (EHLO mail.example-bank.test) by 10.197.",
			"with SMTPs (version=TLS1_3",
		}, verdicts: []string{"pass", "pass", "pass"}},
		{provider: "outlook", contains: []string{
			"Authentication-Results: spf=pass (sender IP is 127.0.0.11) smtp.mailfrom=example-bank.test; dkim=pass (signature was verified) header.d=example-bank.test;dmarc=pass action=none header.from=example-bank.test;compauth=pass reason=100",
			"with Microsoft SMTP Server (version=TLS1_3",
			"SFV:NSPM",
		}, verdicts: []string{"pass", "pass", "pass"}},
		{provider: "bank", contains: []string{
			"Authentication-Results: mx.example-bank.test; spf=pass smtp.mailfrom=otp@example-bank.test; dkim=pass header.d=example-bank.test header.s=selector1; dmarc=pass header.from=example-bank.test",
		}, verdicts: []string{"pass", "pass", "pass"}},
	} {
		check(t, w, e, m365IP, otpFrom, msg)
	}
}

func TestDMARCFailWithReject(t *testing.T) {
	w := newWorld(t)
	// From a host SPF does not authorise, unsigned: SPF fail, no DKIM, DMARC fail.
	msg := message(t, bankDomain, "seed", "", "spoof-1")
	for _, e := range []expectation{
		{provider: "gmail", code: 550, enhanced: smtp.EnhancedCode{5, 7, 26}},
		{provider: "yahoo", code: 554, enhanced: smtp.EnhancedCode{5, 7, 9}},
		{provider: "outlook", folder: imap.MailboxAttrJunk, contains: []string{
			"spf=fail (sender IP is 127.0.0.13) smtp.mailfrom=example-bank.test; dkim=none (message not signed) header.d=none;dmarc=fail action=oreject header.from=example-bank.test;compauth=fail reason=000",
			"SFV:SPM", "CAT:SPOOF",
		}, verdicts: []string{"fail", "none", "fail"}},
		{provider: "bank", contains: []string{"spf=fail", "dkim=none", "dmarc=fail"}},
	} {
		check(t, w, e, strangerIP, otpFrom, msg)
	}
}

func TestQuarantineGoesToJunk(t *testing.T) {
	w := newWorld(t)
	msg := message(t, quarantineDomain, "seed", "", "q-1")
	for _, e := range []expectation{
		{provider: "gmail", folder: imap.MailboxAttrJunk, contains: []string{"dmarc=fail (p=QUARANTINE sp=QUARANTINE dis=QUARANTINE) header.from=quarantine-bank.test"}},
		{provider: "yahoo", folder: imap.MailboxAttrJunk, contains: []string{"dmarc=fail(p=QUARANTINE)"}},
		{provider: "outlook", folder: imap.MailboxAttrJunk, contains: []string{"dmarc=fail action=quarantine"}},
	} {
		check(t, w, e, strangerIP, "otp@"+quarantineDomain, msg)
	}
}

// The M365 incident: the active selector's key is gone. SPF still passes and
// aligns, so DMARC passes; only the spam score differs by provider.
func TestDKIMKeyMissing(t *testing.T) {
	w := newWorld(t)
	msg := message(t, bankDomain, "seed", missingSelector, "nokey-1")
	for _, e := range []expectation{
		{provider: "gmail", contains: []string{"dkim=neutral (no key for signature) header.i=@example-bank.test header.s=selector2", "dmarc=pass"},
			verdicts: []string{"pass", "neutral", "pass"}},
		{provider: "yahoo", contains: []string{"dkim=perm_fail header.i=@example-bank.test header.s=selector2", "dmarc=pass(p=REJECT)"},
			verdicts: []string{"pass", "permerror", "pass"}},
		{provider: "outlook", folder: imap.MailboxAttrJunk, contains: []string{"dkim=fail (no key for signature) header.d=example-bank.test;dmarc=pass action=none", "SFV:SPM"},
			verdicts: []string{"pass", "fail", "pass"}},
	} {
		check(t, w, e, m365IP, otpFrom, msg)
	}
}

func TestSPFIncludeServfail(t *testing.T) {
	w := newWorld(t)
	w.dns.SetFault(m365Include, dnsserver.FaultServfail)
	// DKIM still passes: DMARC passes on DKIM alone.
	signed := message(t, bankDomain, "seed", activeSelector, "servfail-1")
	check(t, w, expectation{provider: "gmail", contains: []string{
		"spf=temperror (google.com: error in processing during lookup of otp@example-bank.test: DNS error)", "dkim=pass", "dmarc=pass"}}, m365IP, otpFrom, signed)
	check(t, w, expectation{provider: "outlook", contains: []string{"spf=temperror (sender IP is 127.0.0.11)", "dmarc=pass"}}, m365IP, otpFrom, signed)

	// Both broken: DMARC temperror. The default profiles treat it as a fail;
	// a deferring profile answers 451.
	unsigned := message(t, bankDomain, "seed", "", "servfail-2")
	for _, e := range []expectation{
		{provider: "gmail", code: 550, enhanced: smtp.EnhancedCode{5, 7, 26}},
		{provider: "yahoo", code: 554, enhanced: smtp.EnhancedCode{5, 7, 9}},
		{provider: "outlook", folder: imap.MailboxAttrJunk, contains: []string{"spf=temperror", "dmarc=temperror action=oreject"},
			verdicts: []string{"temperror", "none", "temperror"}},
		{provider: "deferring", code: 451, enhanced: smtp.EnhancedCode{4, 7, 26}},
	} {
		check(t, w, e, m365IP, otpFrom, unsigned)
	}
}

func TestEnvelopeAndContentErrors(t *testing.T) {
	w := newWorld(t)
	msg := message(t, bankDomain, "seed", activeSelector, "err-1")
	cases := []struct {
		name     string
		rcpt     string
		msg      []byte
		code     int
		enhanced smtp.EnhancedCode
	}{
		{"unknown user", "nobody@gmail.test", msg, 550, smtp.EnhancedCode{5, 1, 1}},
		{"other domain", "seed@yahoo.test", msg, 550, smtp.EnhancedCode{5, 7, 1}},
		{"too big", "seed@gmail.test", append(append([]byte(nil), msg...), []byte(strings.Repeat(strings.Repeat("x", 76)+"\r\n", 1500))...), 552, smtp.EnhancedCode{5, 3, 4}},
		{"no From", "seed@gmail.test", []byte("To: seed@gmail.test\r\nSubject: x\r\n\r\nbody\r\n"), 550, smtp.EnhancedCode{5, 7, 1}},
		{"two From addresses", "seed@gmail.test", []byte("From: a@x.test, b@y.test\r\n\r\nbody\r\n"), 550, smtp.EnhancedCode{5, 7, 1}},
		{"broken header", "seed@gmail.test", []byte("From: a@x.test\r\nno colon here\r\n\r\nbody\r\n"), 554, smtp.EnhancedCode{5, 6, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := w.send(t, "gmail", m365IP, otpFrom, tc.rcpt, tc.msg)
			if code, enh := smtpCode(err); code != tc.code || enh != tc.enhanced {
				t.Fatalf("got %d %v (%v), want %d %v", code, enh, err, tc.code, tc.enhanced)
			}
			if strings.Contains(err.Error(), "receiver:") {
				t.Errorf("reply %q carries the Go package prefix", err)
			}
		})
	}
	if n := w.stores["gmail"].Count("seed", "INBOX"); n != 0 {
		t.Errorf("refused messages were delivered: %d", n)
	}
}

func TestGreylist(t *testing.T) {
	w := newWorld(t)
	if err := w.recv.SetFaults("outlook", receiver.Faults{Greylist: true}); err != nil {
		t.Fatal(err)
	}
	msg := message(t, bankDomain, "seed", activeSelector, "grey-1")
	err := w.send(t, "outlook", m365IP, otpFrom, "seed@outlook.test", msg)
	if code, enh := smtpCode(err); code != 451 || enh != (smtp.EnhancedCode{4, 7, 1}) {
		t.Fatalf("first try: %v, want 451 4.7.1", err)
	}
	if err := w.send(t, "outlook", m365IP, otpFrom, "seed@outlook.test", msg); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if n := w.stores["outlook"].Count("seed", "INBOX"); n != 1 {
		t.Errorf("INBOX has %d messages after the retry, want 1", n)
	}
	// Another message is greylisted on its own first try.
	err = w.send(t, "outlook", m365IP, otpFrom, "seed@outlook.test", message(t, bankDomain, "seed", activeSelector, "grey-2"))
	if code, _ := smtpCode(err); code != 451 {
		t.Errorf("new message first try: %v, want 451", err)
	}
	if err := w.recv.SetFaults("nope", receiver.Faults{Drop: true}); err == nil {
		t.Error("SetFaults on an unknown provider succeeded")
	}
}

func TestDropAndDelay(t *testing.T) {
	w := newWorld(t)
	if err := w.recv.SetFaults("gmail", receiver.Faults{Drop: true}); err != nil {
		t.Fatal(err)
	}
	if err := w.send(t, "gmail", m365IP, otpFrom, "seed@gmail.test", message(t, bankDomain, "seed", activeSelector, "drop-1")); err != nil {
		t.Fatalf("dropped message not accepted: %v", err)
	}
	// Undelayed delivery happens before the 250, so nothing can still be on its way.
	if d := w.stores["gmail"].Deliveries(); len(d) != 0 {
		t.Errorf("dropped message delivered: %+v", d)
	}

	const delay = 300 * time.Millisecond
	if err := w.recv.SetFaults("yahoo", receiver.Faults{Delay: delay}); err != nil {
		t.Fatal(err)
	}
	accepted := time.Now()
	if err := w.send(t, "yahoo", m365IP, otpFrom, "seed@yahoo.test", message(t, bankDomain, "seed", activeSelector, "delay-1")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(w.stores["yahoo"].Deliveries()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	d := w.stores["yahoo"].Deliveries()
	if len(d) != 1 || d[0].ProbeID != "delay-1" {
		t.Fatalf("delayed delivery: %+v", d)
	}
	if held := d[0].At.Sub(accepted); held < delay {
		t.Errorf("delivered %v after sending, before the %v delay", held, delay)
	}
}

func TestIdleSeesDelivery(t *testing.T) {
	w := newWorld(t)
	exists := make(chan uint32, 8)
	c := w.imapDial(t, "gmail", &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
	}})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.send(t, "gmail", m365IP, otpFrom, "seed@gmail.test", message(t, bankDomain, "seed", activeSelector, "idle-1")); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-exists:
		if n != 1 {
			t.Errorf("EXISTS %d, want 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no EXISTS while idling after delivery")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestSharedPortAndConfigErrors(t *testing.T) {
	w := newWorld(t)
	port := w.recv.Port()
	for p, ip := range hostIPs {
		addr, ok := w.recv.Addr(p)
		if !ok || addr != net.JoinHostPort(ip, strconv.Itoa(port)) {
			t.Errorf("%s listens on %q, want %s:%d", p, addr, ip, port)
		}
	}
	if _, err := receiver.Start(receiver.Config{}); err == nil {
		t.Error("Start without a resolver succeeded")
	}
	if _, err := receiver.Start(receiver.Config{Resolver: net.DefaultResolver, Hosts: []receiver.Host{{IP: "nope"}}}); err == nil {
		t.Error("Start with a bad host succeeded")
	}
}

// A DSN arrives with the null sender: SPF checks the HELO identity (no
// record: none), DMARC falls back to the organizational domain's p=reject and
// fails, and the bank's plain profile files it in the INBOX anyway.
func TestNullSenderToBank(t *testing.T) {
	w := newWorld(t)
	dsn := []byte("From: Mail Delivery System <MAILER-DAEMON@mail.example-bank.test>\r\nTo: bounces@example-bank.test\r\n" +
		"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn-1@mail.example-bank.test>\r\n\r\nThe message could not be delivered.\r\n")
	check(t, w, expectation{provider: "bank", contains: []string{"Return-Path: <>", "spf=none smtp.helo=mail.example-bank.test", "dkim=none", "dmarc=fail header.from=mail.example-bank.test"}},
		m365IP, "", dsn)
}

// Commands out of order or malformed get 5xx replies, and the session goes on.
func TestMalformedCommands(t *testing.T) {
	w := newWorld(t)
	addr, _ := w.recv.Addr("gmail")
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	tp := textproto.NewConn(conn)
	if _, _, err := tp.ReadResponse(220); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cmd  string
		code int
	}{
		{"MAIL FROM:<otp@example-bank.test>", 502}, // before EHLO
		{"EHLO", 501},
		{"EHLO client.test", 250},
		{"RCPT TO:<seed@gmail.test>", 502}, // before MAIL
		{"DATA", 502},
		{"MAIL FROM:<otp@example-bank.test", 501},
		{"MAIL FROM:<otp@example-bank.test> SIZE=99999999", 552},
		{"FROB", 500},
		{"MAIL FROM:<otp@example-bank.test>", 250},
		{"RCPT TO:<not-an-address>", 501},
		{"RCPT TO:<seed>", 501},
		{"RCPT TO:<seed@elsewhere.test>", 550},
		{"RCPT TO:<seed@gmail.test>", 250},
		{"QUIT", 221},
	} {
		id, err := tp.Cmd("%s", tc.cmd)
		if err != nil {
			t.Fatal(err)
		}
		tp.StartResponse(id)
		code, msg, _ := tp.ReadResponse(0)
		tp.EndResponse(id)
		if code != tc.code {
			t.Errorf("%q: %d %s, want %d", tc.cmd, code, msg, tc.code)
		}
	}
}
