package receiver

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"
	_ "time/tzdata" // Gmail stamps Received in America/Los_Angeles; tzdata keeps that working without /usr/share/zoneinfo

	"github.com/emersion/go-msgauth/dmarc"
)

// trace is what a receiving MTA knows about one transaction.
type trace struct {
	ClientIP net.IP
	Helo     string
	MailFrom string
	Rcpt     string
	TLS      *tls.ConnectionState // nil without STARTTLS
	At       time.Time            // when the receiver accepted the message
	ID       string               // the receiver's message id
}

// header is one field to prepend: name and unfolded value; folding is
// written as CRLF + whitespace inside value where the provider folds.
type header struct{ name, value string }

// traceHeaders returns the fields the provider prepends, topmost first.
func traceHeaders(p Profile, t trace, r *Results, d Decision) []header {
	switch p.Style {
	case StyleGmail:
		return gmailHeaders(p, t, r, d)
	case StyleYahoo:
		return yahooHeaders(p, t, r, d)
	case StyleMicrosoft:
		return microsoftHeaders(p, t, r, d)
	default:
		return plainHeaders(p, t, r)
	}
}

// render writes the fields as header lines.
func render(hs []header) []byte {
	var b strings.Builder
	for _, h := range hs {
		b.WriteString(h.name)
		b.WriteString(": ")
		b.WriteString(h.value)
		b.WriteString("\r\n")
	}
	return []byte(b.String())
}

var pacific = func() *time.Location {
	loc, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		return time.UTC
	}
	return loc
}()

// Date formats with seconds (RFC 5322 §3.3) and the zone comment.
const (
	dateWithZone = "Mon, 2 Jan 2006 15:04:05 -0700 (MST)"
	dateNumeric  = "Mon, 2 Jan 2006 15:04:05 -0700"
)

// clean keeps client-supplied strings (HELO, addresses) from breaking a
// header: no control characters, no parentheses that would end a comment.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '(' || r == ')' || r == ';' {
			return '_'
		}
		return r
	}, s)
}

// tlsParts returns Go's names in the "TLS1_3" / cipher suite forms the
// providers print.
func tlsParts(st *tls.ConnectionState) (version, cipher string, bits int) {
	version = strings.ReplaceAll(strings.ReplaceAll(tls.VersionName(st.Version), " ", ""), ".", "_")
	cipher = tls.CipherSuiteName(st.CipherSuite)
	bits = 128
	if strings.Contains(cipher, "AES_256") || strings.Contains(cipher, "CHACHA20") {
		bits = 256
	}
	return version, cipher, bits
}

func upperPolicy(p dmarc.Policy) string {
	if p == "" {
		return "NONE"
	}
	return strings.ToUpper(string(p))
}

// ---- Gmail -----------------------------------------------------------------

func gmailHeaders(p Profile, t trace, r *Results, d Decision) []header {
	helo, ip := clean(t.Helo), t.ClientIP.String()
	with, tlsInfo := "ESMTP", ""
	if t.TLS != nil {
		v, c, bits := tlsParts(t.TLS)
		with, tlsInfo = "ESMTPS", fmt.Sprintf("\r\n        (version=%s cipher=%s bits=%d/%d)", v, c, bits, bits)
	}
	received := fmt.Sprintf("from %s (%s. [%s])\r\n        by %s with %s id %s\r\n        for <%s>%s;\r\n        %s",
		helo, helo, ip, p.Hostname, with, t.ID, clean(t.Rcpt), tlsInfo, t.At.In(pacific).Format(dateWithZone))

	sender := clean(r.SPF.Sender)
	var spfComment string
	switch r.SPF.Value {
	case ValPass:
		spfComment = fmt.Sprintf("google.com: domain of %s designates %s as permitted sender", sender, ip)
	case ValFail:
		spfComment = fmt.Sprintf("google.com: domain of %s does not designate %s as permitted sender", sender, ip)
	case ValSoftFail:
		spfComment = fmt.Sprintf("google.com: domain of transitioning %s does not designate %s as permitted sender", sender, ip)
	case ValNeutral:
		spfComment = fmt.Sprintf("google.com: %s is neither permitted nor denied by domain of %s", ip, sender)
	case ValTempError:
		spfComment = fmt.Sprintf("google.com: error in processing during lookup of %s: DNS error", sender)
	case ValPermError:
		spfComment = fmt.Sprintf("google.com: permanent error in processing during lookup of %s: %s", sender, clean(r.SPF.Reason))
	default:
		spfComment = fmt.Sprintf("google.com: %s does not designate permitted sender hosts", sender)
	}
	mailfrom := "smtp.mailfrom=" + sender
	if r.MailFrom == "" {
		mailfrom = "smtp.helo=" + helo
	}

	var parts []string
	for _, k := range r.DKIM {
		// Gmail reports a missing key and a body hash mismatch as neutral.
		val, comment := k.Value, ""
		switch {
		case k.Value == ValPermError && k.Reason == "no key for signature",
			k.Value == ValFail && k.Reason == "body hash did not verify":
			val, comment = ValNeutral, " ("+k.Reason+")"
		case k.Value == ValPermError || k.Value == ValTempError:
			comment = " (" + clean(k.Reason) + ")"
		}
		parts = append(parts, fmt.Sprintf("dkim=%s%s header.i=%s header.s=%s header.b=%s", val, comment, clean(k.Identifier), clean(k.Selector), clean(k.B)))
	}
	if r.ARC.Value != "" {
		parts = append(parts, gmailARC(r.ARC))
	}
	parts = append(parts, fmt.Sprintf("spf=%s (%s) %s", r.SPF.Value, spfComment, mailfrom))
	// Gmail writes no dmarc= at all when the From domain publishes no record.
	if r.DMARC.Value != ValNone {
		dm := fmt.Sprintf("dmarc=%s", r.DMARC.Value)
		if rec := r.DMARC.Record; rec != nil {
			sp := rec.SubdomainPolicy
			if sp == "" {
				sp = rec.Policy
			}
			dis := "NONE"
			if r.DMARC.Value != ValPass {
				dis = strings.ToUpper(d.Disposition)
			}
			dm += fmt.Sprintf(" (p=%s sp=%s dis=%s)", upperPolicy(rec.Policy), upperPolicy(sp), dis)
		}
		parts = append(parts, dm+" header.from="+clean(r.DMARC.FromDomain))
	}
	ar := p.AuthservID + ";\r\n       " + strings.Join(parts, ";\r\n       ")

	return []header{
		{"Delivered-To", clean(t.Rcpt)},
		{"Return-Path", "<" + clean(t.MailFrom) + ">"},
		{"Received", received},
		{"Received-SPF", fmt.Sprintf("%s (%s) client-ip=%s;", r.SPF.Value, spfComment, ip)},
		{"Authentication-Results", ar},
	}
}

// ---- Yahoo -----------------------------------------------------------------

func yahooHeaders(p Profile, t trace, r *Results, d Decision) []header {
	helo, ip := clean(t.Helo), t.ClientIP.String()
	with, tlsInfo := "SMTP", ""
	if t.TLS != nil {
		v, c, _ := tlsParts(t.TLS)
		with, tlsInfo = "SMTPs", fmt.Sprintf("\r\n (version=%s cipher=%s)", v, c)
	}
	at := t.At.UTC().Format(dateNumeric)
	// Yahoo names the internal relay by its private address.
	received := fmt.Sprintf("from %s (EHLO %s)\r\n by 10.197.33.%d with %s%s;\r\n %s", ip, helo, 10+len(t.ID)%200, with, tlsInfo, at)

	var parts []string
	for _, k := range r.DKIM {
		val := k.Value
		if val == ValPermError || val == ValFail {
			val = "perm_fail" // Yahoo's own value for a signature it cannot verify
		}
		parts = append(parts, fmt.Sprintf("dkim=%s header.i=%s header.s=%s", val, clean(k.Identifier), clean(k.Selector)))
	}
	parts = append(parts, fmt.Sprintf("spf=%s smtp.mailfrom=%s", r.SPF.Value, clean(r.SPF.Domain)))
	dm := "dmarc=" + r.DMARC.Value
	if r.DMARC.Record != nil {
		dm += "(p=" + upperPolicy(r.DMARC.Record.Policy) + ")"
	}
	parts = append(parts, dm+" header.from="+clean(r.DMARC.FromDomain))
	ar := p.AuthservID + ";\r\n " + strings.Join(parts, ";\r\n ") + ";"

	var spfText string
	switch r.SPF.Value {
	case ValPass:
		spfText = fmt.Sprintf("pass (domain of %s designates %s as permitted sender)", clean(r.SPF.Domain), ip)
	case ValNone:
		spfText = fmt.Sprintf("none (domain of %s does not designate permitted sender hosts)", clean(r.SPF.Domain))
	default:
		spfText = fmt.Sprintf("%s (domain of %s does not designate %s as permitted sender)", r.SPF.Value, clean(r.SPF.Domain), ip)
	}
	return []header{
		{"Return-Path", "<" + clean(t.MailFrom) + ">"},
		{"Received", received},
		{"X-Originating-Ip", "[" + ip + "]"},
		{"Received-SPF", spfText},
		{"Authentication-Results", ar},
		{"X-Apparently-To", clean(t.Rcpt) + "; " + at},
	}
}

// ---- Microsoft -------------------------------------------------------------

func microsoftHeaders(p Profile, t trace, r *Results, d Decision) []header {
	helo, ip := clean(t.Helo), t.ClientIP.String()
	tlsInfo := ""
	if t.TLS != nil {
		v, c, _ := tlsParts(t.TLS)
		tlsInfo = fmt.Sprintf(" (version=%s, cipher=%s)", v, c)
	}
	received := fmt.Sprintf("from %s (%s) by\r\n %s (10.13.178.150) with Microsoft SMTP\r\n Server%s id 15.20.8722.1\r\n via Frontend Transport; %s",
		helo, ip, p.Hostname, tlsInfo, t.At.UTC().Format(dateNumeric))

	spfDomain := clean(r.SPF.Domain)
	spfPart := fmt.Sprintf("spf=%s (sender IP is %s)\r\n smtp.mailfrom=%s", r.SPF.Value, ip, spfDomain)

	var dkimParts []string
	if len(r.DKIM) == 0 {
		dkimParts = append(dkimParts, "dkim=none (message not signed)\r\n header.d=none")
	}
	for _, k := range r.DKIM {
		val, comment := k.Value, "signature was verified"
		switch k.Value {
		case ValPass:
		case ValPermError, ValFail:
			val, comment = ValFail, clean(k.Reason)
		default:
			comment = clean(k.Reason)
		}
		dkimParts = append(dkimParts, fmt.Sprintf("dkim=%s (%s)\r\n header.d=%s", val, comment, clean(k.Domain)))
	}

	action := "none"
	switch {
	case r.DMARC.Value == ValPass || r.DMARC.Value == ValNone:
	case d.Disposition == "reject":
		action = "oreject" // Microsoft overrides reject: delivered to Junk
	case d.Disposition == "quarantine":
		action = "quarantine"
	}
	compauth := "compauth=pass reason=100"
	switch {
	case r.DMARC.Value == ValPass:
	case r.DMARC.Value == ValNone && (r.SPF.Value == ValPass || r.DKIMPass()):
		compauth = "compauth=softpass reason=201"
	case r.DMARC.Value == ValFail && r.DMARC.Policy != dmarc.PolicyNone:
		compauth = "compauth=fail reason=000" // explicit: the domain's DMARC policy
	default:
		compauth = "compauth=fail reason=001" // implicit: nothing authenticated
	}
	ar := spfPart + "; " + strings.Join(dkimParts, "; ") +
		fmt.Sprintf(";dmarc=%s action=%s\r\n header.from=%s;%s", r.DMARC.Value, action, clean(r.DMARC.FromDomain), compauth)

	var rspf string
	switch r.SPF.Value {
	case ValPass:
		rspf = fmt.Sprintf("Pass (protection.outlook.com: domain of %s\r\n designates %s as permitted sender)", spfDomain, ip)
	case ValFail, ValSoftFail:
		rspf = fmt.Sprintf("%s (protection.outlook.com: domain of %s does\r\n not designate %s as permitted sender)", titleCase(r.SPF.Value), spfDomain, ip)
	default:
		rspf = fmt.Sprintf("%s (protection.outlook.com: domain of %s\r\n used an SPF record that could not be evaluated)", titleCase(r.SPF.Value), spfDomain)
	}
	rspf += fmt.Sprintf(" receiver=protection.outlook.com;\r\n client-ip=%s; helo=%s; pr=C", ip, helo)

	sfv, scl, cat := "NSPM", 1, "NONE"
	if d.Junk {
		sfv, scl, cat = "SPM", 5, "SPM"
		if r.DMARC.Value == ValFail || r.DMARC.Value == ValTempError {
			cat = "SPOOF"
		}
	}
	return []header{
		{"Received", received},
		{"Authentication-Results", ar},
		{"Received-SPF", rspf},
		{"X-MS-Exchange-Organization-SCL", fmt.Sprint(scl)},
		{"X-Forefront-Antispam-Report", fmt.Sprintf("CIP:%s;CTRY:;LANG:en;SCL:%d;SRV:;IPV:NLI;SFV:%s;H:%s;PTR:;CAT:%s;SFS:;DIR:INB;", ip, scl, sfv, helo, cat)},
		{"Return-Path", clean(t.MailFrom)},
	}
}

func titleCase(v string) string {
	if v == "" {
		return v
	}
	return strings.ToUpper(v[:1]) + v[1:]
}

// ---- plain (RFC 8601 + RFC 5321 §4.4) --------------------------------------

func plainHeaders(p Profile, t trace, r *Results) []header {
	helo, ip := clean(t.Helo), t.ClientIP.String()
	with := "ESMTP"
	if t.TLS != nil {
		with = "ESMTPS"
	}
	received := fmt.Sprintf("from %s ([%s])\r\n\tby %s with %s id %s\r\n\tfor <%s>; %s",
		helo, ip, p.Hostname, with, t.ID, clean(t.Rcpt), t.At.UTC().Format(dateNumeric))
	parts := []string{fmt.Sprintf("spf=%s smtp.mailfrom=%s", r.SPF.Value, clean(r.SPF.Sender))}
	if r.MailFrom == "" {
		parts[0] = fmt.Sprintf("spf=%s smtp.helo=%s", r.SPF.Value, helo) // null sender: the HELO identity was checked
	}
	if len(r.DKIM) == 0 {
		parts = append(parts, "dkim=none")
	}
	for _, k := range r.DKIM {
		s := "dkim=" + k.Value
		if k.Reason != "" {
			s += " (" + clean(k.Reason) + ")"
		}
		parts = append(parts, s+fmt.Sprintf(" header.d=%s header.s=%s", clean(k.Domain), clean(k.Selector)))
	}
	parts = append(parts, fmt.Sprintf("dmarc=%s header.from=%s", r.DMARC.Value, clean(r.DMARC.FromDomain)))
	return []header{
		{"Return-Path", "<" + clean(t.MailFrom) + ">"},
		{"Received", received},
		{"Authentication-Results", p.AuthservID + ";\r\n\t" + strings.Join(parts, ";\r\n\t")},
	}
}
