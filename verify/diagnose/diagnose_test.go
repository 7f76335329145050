package diagnose

import (
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/verify"
	"github.com/otpprobe/otpprobe/verify/dnscheck"
)

// outlookHeader is a canary as the lab's Outlook-like receiver stored it.
const outlookHeader = "Received: from mail-out.protection.outlook.test (127.0.0.11) by\r\n" +
	" DM6NAM12FT034.mail.protection.outlook.com (10.13.178.150) with Microsoft SMTP\r\n" +
	" Server id 15.20.8722.1 via Frontend Transport; Mon, 23 Nov 2026 18:29:49 +0000\r\n" +
	"Authentication-Results: spf=pass (sender IP is 127.0.0.11)\r\n" +
	" smtp.mailfrom=example-bank.test; dkim=fail (no key for signature)\r\n" +
	" header.d=example-bank.test;dmarc=pass action=none header.from=example-bank.test\r\n" +
	"DKIM-Signature: a=rsa-sha256; bh=XFlHqkCwZGMmYfYjVml6cQqbAfBLwXJ+V75XvjWaiec=;\r\n" +
	" c=relaxed/relaxed; d=Example-Bank.test;\r\n" +
	" h=From:To:Subject:Date:Message-ID;\r\n" +
	" s=selector1; t=1795458588; v=1;\r\n" +
	" b=QFhw0QKq4PYo2KXNjV0m4sxz3NPppxlvzMgQtoaN54bIT9e2cjM6ImBtMSq6iOLC9E0wuU21\r\n" +
	"Received: from vm (vm [127.0.0.1]) by mail-out.protection.outlook.test with\r\n" +
	" ESMTPSA id 22879894338034; Mon, 23 Nov 2026 18:29:48 +0000\r\n" +
	"From: <otp@example-bank.test>\r\n\r\n"

func TestSignaturesAndSourceIP(t *testing.T) {
	if got, want := Signatures(outlookHeader), []Signature{{"example-bank.test", "selector1"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Signatures = %v, want %v", got, want)
	}
	if ip := SourceIP(outlookHeader); !ip.Equal(net.ParseIP("127.0.0.11")) {
		t.Errorf("SourceIP = %v, want 127.0.0.11 (top Received, not the submission hop)", ip)
	}
	spf := "Received-SPF: Pass (domain designates 192.0.2.7) client-ip=192.0.2.7; helo=x\r\n" + outlookHeader
	if ip := SourceIP(spf); !ip.Equal(net.ParseIP("192.0.2.7")) {
		t.Errorf("SourceIP = %v, want Received-SPF's client-ip", ip)
	}
	gmail := "Received: from out.backup-relay.test (out.backup-relay.test. [2001:db8::12])\r\n by mx.google.com with ESMTPS id x; Mon, 23 Nov 2026 18:29:49 +0000\r\n\r\n"
	if ip := SourceIP(gmail); !ip.Equal(net.ParseIP("2001:db8::12")) {
		t.Errorf("SourceIP = %v, want the IPv6 literal", ip)
	}
	yahoo := "Received: from 127.0.0.1\r\n by atlas-production.v2-mail-prod1-gq1.omega.yahoo.com with HTTP; Sat, 9 Jul 2022 10:40:00 +0000\r\n" +
		"X-Originating-Ip: [166.216.152.37]\r\nReceived-SPF: pass (domain of mms.att.net designates 166.216.152.37 as permitted sender)\r\n\r\n"
	if ip := SourceIP(yahoo); !ip.Equal(net.ParseIP("166.216.152.37")) {
		t.Errorf("SourceIP = %v, want the address Yahoo's Received-SPF names", ip)
	}
	bare := "Received: from 192.0.2.7 (EHLO out.example)\r\n by 10.197.33.10 with SMTPs; Mon, 23 Nov 2026 18:29:49 +0000\r\nReceived-SPF: none (domain of x does not designate permitted sender hosts)\r\n\r\n"
	if ip := SourceIP(bare); !ip.Equal(net.ParseIP("192.0.2.7")) {
		t.Errorf("SourceIP = %v, want the bare address after from", ip)
	}
	// Dovecot's LMTP hop names no address: the Postfix hop below it does.
	lmtp := "Received: from mx.rx.test\r\n by vm with LMTP\r\n id 8PQp\r\n for <seed@rx.test>; Sat, 05 Dec 2026 19:22:40 +0000\r\n" +
		"Received: from relay.verify.test (unknown [127.0.0.61])\r\n by mx.rx.test (Postfix) with ESMTP id 2883E; Sat,  5 Dec 2026 19:22:40 +0000\r\n" +
		"Received: from reject.verify.test (localhost [127.0.0.1])\r\n by postfix.interop.test (Postfix) with ESMTPSA id 0E62; Sat,  5 Dec 2026 19:22:40 +0000\r\n\r\n"
	if ip := SourceIP(lmtp); !ip.Equal(net.ParseIP("127.0.0.61")) {
		t.Errorf("SourceIP = %v, want 127.0.0.61 (the first Received naming an address)", ip)
	}
	for _, h := range []string{"", "not a header", "DKIM-Signature: v=1; d=; s=x\r\n\r\n", "Received: from 127.0.0.1 by mx with HTTP; x\r\n\r\n"} {
		if Signatures(h) != nil || SourceIP(h) != nil {
			t.Errorf("%q: signatures %v, source %v; want none", h, Signatures(h), SourceIP(h))
		}
	}
}

func finding(sev dnscheck.Severity, code, name, data, msg string) dnscheck.Finding {
	return dnscheck.Finding{Severity: sev, Code: code, Name: name, Data: data, Message: msg}
}

// brokenZone has a finding for each check, including a selector and a
// source address our example attempts do not use.
var brokenZone = &dnscheck.Report{Domain: "example-bank.test", Findings: []dnscheck.Finding{
	finding(dnscheck.SeverityCritical, "dkim.key_missing", "relay2026._domainkey.example-bank.test.", "NXDOMAIN", "relay2026 has no key."),
	finding(dnscheck.SeverityCritical, "dkim.cname_dangling", "selector1._domainkey.example-bank.test.", "x.test", "selector1 dangles."),
	finding(dnscheck.SeverityCritical, "dmarc.missing", "_dmarc.example-bank.test.", "NXDOMAIN", "_dmarc.example-bank.test does not exist."),
	finding(dnscheck.SeverityCritical, "spf.source_not_authorised", "example-bank.test.", "127.0.0.12: fail", "127.0.0.12 is not authorised."),
	finding(dnscheck.SeverityWarning, "spf.neutral_all", "example-bank.test.", "?all", "neutral."),
}}

func TestDiagnose(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC)
	pass := verify.Verdicts{Trusted: true, SPF: "pass", DKIM: "pass", DMARC: "pass"}
	delivered := Evidence{Attempt: &attempt.Attempt{Outcome: attempt.OutcomeInbox, Sender: "m365", Mailbox: "gmail", Provider: "gmail", SubmittedAt: t0, SeenAt: t0.Add(time.Second), ReceivedAt: t0, LatencySLO: 5 * time.Second, Verdicts: pass, Header: outlookHeader, SMTP: attempt.SMTPResult{Code: 250, Reply: "250 2.0.0 Ok: queued as ABC"}}}
	with := func(f func(e *Evidence)) Evidence {
		e := delivered
		a := *delivered.Attempt // f changes a copy
		e.Attempt = &a
		f(&e)
		return e
	}
	ms := func(n int) *int { return &n }
	tests := []struct {
		name string
		e    Evidence
		want []string // phrases; nil: healthy, no diagnosis
	}{
		{"healthy", delivered, nil},
		{"healthy without DNS or header", with(func(e *Evidence) { e.Header = "" }), nil},
		{"dkim names the signing selector", with(func(e *Evidence) { e.Verdicts.DKIM = "fail"; e.DNS = brokenZone }),
			[]string{"dkim=fail at gmail: selector1 dangles."}},
		{"dkim selector from the receiver's header.s", with(func(e *Evidence) {
			e.Header = ""
			e.Verdicts.DKIM = "fail"
			e.Verdicts.Results = []verify.Result{{Method: "dkim", Result: "fail", Props: map[string]string{"header.d": "example-bank.test", "header.s": "relay2026"}}}
			e.DNS = brokenZone
		}), []string{"relay2026 has no key."}},
		{"missing dmarc in a trusted header", with(func(e *Evidence) { e.Verdicts.DMARC = ""; e.DNS = brokenZone }),
			[]string{"dmarc=none at gmail", "_dmarc.example-bank.test does not exist"}},
		{"a record seen changing", with(func(e *Evidence) {
			e.Verdicts.DMARC = "none"
			e.DNS = brokenZone
			e.ChangedAt = t0.Add(-3 * time.Minute)
			e.Changes = []dnscheck.Change{{Name: "_dmarc.example-bank.test.", Type: "TXT",
				Before: &dnscheck.RRset{Rcode: "NOERROR", Data: []string{"v=DMARC1; p=reject"}}, After: &dnscheck.RRset{Rcode: "NXDOMAIN"}}}
		}), []string{"_dmarc.example-bank.test does not exist (_dmarc.example-bank.test TXT no longer exists: it changed at 17:57:00 UTC; before: \"v=DMARC1; p=reject\")."}},
		{"spf finding about another address is not this one's cause", with(func(e *Evidence) { e.Verdicts.SPF = "fail"; e.DNS = brokenZone }),
			[]string{"gmail reported spf=fail for 127.0.0.11", "DNS records checked look sound"}},
		{"no snapshot", with(func(e *Evidence) { e.Verdicts.DKIM = "permerror" }),
			[]string{"dkim=permerror for selector selector1 of example-bank.test", "no DNS snapshot"}},
		{"spam with passing auth", with(func(e *Evidence) {
			e.Outcome = attempt.OutcomeSpam
			e.Verdicts.Spam = &verify.SpamSignals{Microsoft: &verify.MicrosoftSpam{SFV: "SPM", SCL: ms(6)}}
		}), []string{"filed the canary as spam although SPF, DKIM and DMARC passed: Microsoft at gmail says SFV=SPM SCL=6", "not DNS"}},
		{"spam with passing auth, rspamd names its rules", with(func(e *Evidence) {
			e.Outcome = attempt.OutcomeSpam
			score, thr := 7.5, 15.0
			e.Verdicts.Spam = &verify.SpamSignals{Rspamd: &verify.RspamdSpam{Score: &score, Threshold: &thr, Symbols: []verify.RspamdSymbol{
				{Name: "MID_MISSING_BRACKETS", Score: 0.5}, {Name: "R_SPF_ALLOW", Score: -0.2}, {Name: "INVALID_FROM_8BIT", Score: 5.5}, {Name: "FROM_INVALID", Score: 2}}}}
		}), []string{"gmail filed the canary as spam although SPF, DKIM and DMARC passed: rspamd at gmail scored 7.5/15: INVALID_FROM_8BIT 5.5, FROM_INVALID 2.0, MID_MISSING_BRACKETS 0.5;"}},
		{"spam with passing auth, SpamAssassin names its tests", with(func(e *Evidence) {
			e.Outcome, e.Mailbox, e.Provider = attempt.OutcomeSpam, "seed-1", "generic"
			score, req := 6.1, 5.0
			e.Verdicts.Spam = &verify.SpamSignals{SpamAssassin: &verify.SpamAssassinSpam{Spam: true, Score: &score, Required: &req, Tests: []string{"FROM_EXCESS_BASE64", "MISSING_MID"}}}
		}), []string{"seed-1 filed the canary", "SpamAssassin at seed-1 scored 6.1/5: FROM_EXCESS_BASE64, MISSING_MID"}},
		{"the provider in brackets when the mailbox has another name", with(func(e *Evidence) {
			e.Mailbox, e.Verdicts.DKIM = "seed-2", "fail"
			e.DNS = brokenZone
		}), []string{"dkim=fail at seed-2 (gmail): selector1 dangles."}},
		{"both SPF and DKIM broken are both named", with(func(e *Evidence) {
			e.Verdicts.SPF, e.Verdicts.DKIM, e.Verdicts.DMARC = "fail", "fail", "fail"
			e.Header = strings.Replace(outlookHeader, "127.0.0.11", "127.0.0.12", 1)
			e.DNS = brokenZone
		}), []string{"spf=fail at gmail: 127.0.0.12 is not authorised; dkim=fail: selector1 dangles."}},
		{"late before the provider took it (greylisting)", with(func(e *Evidence) {
			e.Late, e.ReceivedAt, e.SeenAt = true, t0.Add(61*time.Second), t0.Add(61500*time.Millisecond)
		}), []string{"Delivered in 1m2s (SLO 5s)", "accepted it only about 1m1s after submission", "451 4.7.1", "retry"}},
		{"late inside the provider", with(func(e *Evidence) { e.Late, e.SeenAt = true, t0.Add(12*time.Second) }),
			[]string{"accepted it at once", "12s later, held inside the provider"}},
		{"late without Received time", with(func(e *Evidence) { e.Late, e.ReceivedAt, e.SeenAt = true, time.Time{}, t0.Add(9*time.Second) }),
			[]string{"Delivered in 9s", "gives no time"}},
		{"connection refused", Evidence{Attempt: &attempt.Attempt{Outcome: attempt.OutcomeSendFailed, Sender: "m365", SMTP: attempt.SMTPResult{Stage: "dial", Reply: "smtp dial: dial tcp 127.0.0.11:587: connect: connection refused"}}},
			[]string{"submission server of m365 refused the connection", "127.0.0.11:587"}},
		{"421 greeting", Evidence{Attempt: &attempt.Attempt{Outcome: attempt.OutcomeSendFailed, Sender: "m365", SMTP: attempt.SMTPResult{Stage: "greeting", Code: 421, Enhanced: "4.3.2", Reply: "smtp greeting: 421 4.3.2 Service not available"}}}, []string{"not taking mail", "421 4.3.2"}},
		{"auth", Evidence{Attempt: &attempt.Attempt{Outcome: attempt.OutcomeSendFailed, Sender: "backup", SMTP: attempt.SMTPResult{Stage: "auth", Code: 535, Enhanced: "5.7.8"}}},
			[]string{"rejected our credentials with 535 5.7.8"}},
		{"basic auth disabled", Evidence{Attempt: &attempt.Attempt{Outcome: attempt.OutcomeSendFailed, Sender: "m365", SMTP: attempt.SMTPResult{Stage: "auth", Code: 535, Enhanced: "5.7.139",
			Reply: "smtp auth: 535 5.7.139 Authentication unsuccessful, basic authentication is disabled."}}},
			[]string{"SMTP AUTH Basic is disabled for the tenant of m365", "535 5.7.139", "auth.oauth2", "XOAUTH2", "type: graph"}},
		{"no token", Evidence{Attempt: &attempt.Attempt{Outcome: attempt.OutcomeSendFailed, Sender: "m365", SMTP: attempt.SMTPResult{Stage: "token",
			Reply: "smtp token: token endpoint refused: invalid_client: AADSTS7000222: The provided client secret keys for app 'x' are expired."}}},
			[]string{"m365 could not get an OAuth2 access token", "AADSTS7000222"}},
		{"rcpt deferred", Evidence{Attempt: &attempt.Attempt{Outcome: attempt.OutcomeSendFailed, Sender: "backup", SMTP: attempt.SMTPResult{Stage: "rcpt", Code: 451, Enhanced: "4.7.1", Reply: "try later"}}},
			[]string{"deferred the message at RCPT with 451 4.7.1"}},
		{"lost, DNS sound", Evidence{Attempt: &attempt.Attempt{Outcome: attempt.OutcomeLost, Sender: "backup", Mailbox: "gmail", Provider: "gmail", SubmittedAt: t0, CreatedAt: t0, Deadline: t0.Add(10 * time.Minute), SMTP: attempt.SMTPResult{Reply: "250 2.0.0 Ok: queued as ABC"}}, DNS: &dnscheck.Report{}},
			[]string{"Accepted by backup (250 2.0.0 Ok: …) but never delivered", "within 10m0s", "no bounce"}},
		{"lost, another address unauthorised", Evidence{Attempt: &attempt.Attempt{Outcome: attempt.OutcomeLost, Sender: "backup", Mailbox: "gmail", SubmittedAt: t0}, KnownSource: "127.0.0.1", DNS: brokenZone}, []string{"never delivered", "no bounce"}},
		{"lost, this sender's address unauthorised", Evidence{Attempt: &attempt.Attempt{Outcome: attempt.OutcomeLost, Sender: "backup", Mailbox: "gmail", SubmittedAt: t0}, KnownSource: "127.0.0.12", DNS: brokenZone}, []string{"most likely rejected under DMARC because 127.0.0.12 is not authorised."}},
		{"bounced with a DNS cause", Evidence{Attempt: &attempt.Attempt{Outcome: attempt.OutcomeBounced, Provider: "gmail", SMTP: attempt.SMTPResult{Stage: "bounce", Code: 550, Enhanced: "5.7.26", Reply: "smtp; 550 5.7.26 Unauthenticated email is not accepted"}}, KnownSigners: []Signature{{"example-bank.test", "relay2026"}}, DNS: brokenZone},
			[]string{"gmail bounced the canary with 550 5.7.26 (smtp; 550 5.7.26 Unauthenticated", "because relay2026 has no key."}},
		{"bounced: the DSN's status, diagnostic and remote MTA, and every broken record", Evidence{Attempt: &attempt.Attempt{Outcome: attempt.OutcomeBounced, Sender: "m365", Mailbox: "gmail", Provider: "generic",
			SMTP:   attempt.SMTPResult{Stage: "bounce", Enhanced: "5.7.1"},
			Detail: `{"bounce":{"dsn":{"format":"rfc3464","reporting_mta":"dns; relay.example-bank.test","recipients":[{"action":"failed","status":"5.7.1","diagnostic_code":"smtp; 554 5.7.1 DMARC policy violation","remote_mta":"dns; mx.gmail.test"}]}}}`},
			KnownSource: "127.0.0.12", KnownAt: t0.Add(-5 * time.Minute), KnownSigners: []Signature{{"example-bank.test", "selector1"}}, DNS: brokenZone},
			[]string{`gmail bounced the canary (DSN Status 5.7.1, Diagnostic-Code "smtp; 554 5.7.1 DMARC policy violation", Remote-MTA dns; mx.gmail.test), because 127.0.0.12 is not authorised (it delivered our canaries until 17:55:00 UTC); and selector1 dangles.`}},
		{"bounced with a status and no reply code", Evidence{Attempt: &attempt.Attempt{Outcome: attempt.OutcomeBounced, Mailbox: "gmail", SMTP: attempt.SMTPResult{Stage: "bounce", Enhanced: "5.4.4", Reply: "delivery failed, status 5.4.4"}}},
			[]string{"gmail bounced the canary with status 5.4.4 (delivery failed, status 5.4.4)."}},
		{"bounced without DNS", Evidence{Attempt: &attempt.Attempt{Outcome: attempt.OutcomeBounced, Provider: "yahoo", SMTP: attempt.SMTPResult{Code: 554, Reply: "554 rejected"}}},
			[]string{"yahoo bounced the canary with 554 (554 rejected)."}},
		{"multi-line replies stay on one line", Evidence{Attempt: &attempt.Attempt{Outcome: attempt.OutcomeSendFailed, Sender: "m365", SMTP: attempt.SMTPResult{Stage: "data", Code: 550, Enhanced: "5.7.1", Reply: "smtp data: 550 5.7.1 Message rejected\r\n550 5.7.1 see the policy page"}}},
			[]string{"rejected the message at DATA with 550 5.7.1 (smtp data: 550 5.7.1 Message rejected 550 5.7.1 see the policy page)."}},
		{"multi-line bounce", Evidence{Attempt: &attempt.Attempt{Outcome: attempt.OutcomeBounced, Provider: "gmail", SMTP: attempt.SMTPResult{Code: 550, Reply: "550-5.7.26 line one\n550 5.7.26 line two"}}},
			[]string{"gmail bounced the canary with 550 (550-5.7.26 line one 550 5.7.26 line two)."}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Diagnose(tc.e)
			if tc.want == nil {
				if got != "" || !Healthy(tc.e) {
					t.Errorf("Diagnose = %q, healthy %v; want none", got, Healthy(tc.e))
				}
				return
			}
			if Healthy(tc.e) {
				t.Error("Healthy = true")
			}
			for _, p := range tc.want {
				if !strings.Contains(got, p) {
					t.Errorf("Diagnose = %q\nlacks %q", got, p)
				}
			}
			if strings.Count(got, "\n") > 0 {
				t.Errorf("not one line: %q", got)
			}
		})
	}
}
