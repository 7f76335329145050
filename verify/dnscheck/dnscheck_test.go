package dnscheck

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/lab/dnsserver"
)

func TestHealthyCustomer(t *testing.T) {
	_, r := startWorld(t)
	rep := runCheck(t, r, customer())
	if rep.Failed() || rep.Worst() > SeverityNote {
		t.Errorf("healthy world has findings:\n%s", dump(rep))
	}
	notes := rep.Has("dkim.m365_inactive_selector")
	if len(notes) != 1 || notes[0].Name != "selector2._domainkey.example-bank.test." {
		t.Errorf("want one note for the inactive M365 selector, got:\n%s", dump(rep))
	}
	if len(rep.Records) == 0 {
		t.Fatal("no snapshot records")
	}
	// The snapshot is normalised: checking again gives the same records.
	if again := runCheck(t, r, customer()); !slices.EqualFunc(rep.Records, again.Records, equalRRset) {
		t.Error("snapshot differs between two checks of an unchanged world")
	}
}

func equalRRset(a, b RRset) bool {
	return a.Name == b.Name && a.Type == b.Type && a.Rcode == b.Rcode &&
		slices.Equal(a.CNAMEs, b.CNAMEs) && slices.Equal(a.Data, b.Data)
}

func dump(rep Report) string {
	var b strings.Builder
	for _, f := range rep.Findings {
		fmt.Fprintf(&b, "  %s [%s]\n", f, f.Data)
	}
	return b.String()
}

// want is a finding a scenario must produce.
type want struct {
	sev  Severity
	code string
	name string // fully qualified; "" = the customer domain
	data string // substring of Data; "" = anything
}

func TestScenarios(t *testing.T) {
	const (
		cust    = lab.CustomerDomain + "."
		dmarcN  = "_dmarc." + lab.CustomerDomain + "."
		sel1    = "selector1._domainkey." + lab.CustomerDomain + "."
		sel2    = "selector2._domainkey." + lab.CustomerDomain + "."
		relay   = "relay2026._domainkey." + lab.CustomerDomain + "."
		m365Inc = lab.M365SPFInclude + "."
	)
	setSPF := func(rec ...string) func(*dnsserver.Server) error {
		return func(s *dnsserver.Server) error {
			var rrs []string
			for _, r := range rec {
				rrs = append(rrs, txt(lab.CustomerDomain, r))
			}
			return s.Set(lab.CustomerDomain, dns.TypeTXT, rrs...)
		}
	}
	setTXT := func(name string, values ...string) func(*dnsserver.Server) error {
		return func(s *dnsserver.Server) error {
			var rrs []string
			for _, v := range values {
				rrs = append(rrs, txt(name, v))
			}
			return s.Set(name, dns.TypeTXT, rrs...)
		}
	}
	fault := func(name string, f dnsserver.Fault) func(*dnsserver.Server) error {
		return func(s *dnsserver.Server) error { s.SetFault(name, f); return nil }
	}
	remove := func(name string, qtype uint16) func(*dnsserver.Server) error {
		return func(s *dnsserver.Server) error { s.Remove(name, qtype); return nil }
	}
	m365Key := lab.M365SelectorTarget(lab.M365ActiveSelector)

	tests := []struct {
		name   string
		edit   func(*dnsserver.Server) error
		domain func(d *Domain)
		want   []want // exactly the findings of warning and above
	}{
		// SPF
		{"spf include SERVFAIL", fault(lab.M365SPFInclude, dnsserver.FaultServfail), nil,
			[]want{{SeverityCritical, "spf.include_tempfail", m365Inc, "SERVFAIL"}}},
		{"spf include timeout", fault(lab.M365SPFInclude, dnsserver.FaultTimeout), nil,
			[]want{{SeverityCritical, "spf.include_tempfail", m365Inc, "TIMEOUT"}}},
		{"spf include NXDOMAIN", remove(lab.M365SPFInclude, dns.TypeANY), nil,
			[]want{{SeverityCritical, "spf.include_nxdomain", m365Inc, "NXDOMAIN"}}},
		{"spf include without SPF", setTXT(lab.M365SPFInclude, "MS=ms123456"), nil,
			[]want{{SeverityCritical, "spf.include_no_record", m365Inc, "MS=ms123456"}}},
		{"spf include with two records", setTXT(lab.M365SPFInclude, "v=spf1 -all", "v=spf1 ip4:127.0.0.11 -all"), nil,
			[]want{{SeverityCritical, "spf.include_multiple", m365Inc, ""}}},
		{"spf too many lookups", setSPF("v=spf1 include:" + lab.MarketingInclude + " include:" + lab.M365SPFInclude + " include:" + lab.BackupSPFInclude + " -all"), nil,
			[]want{{SeverityCritical, "spf.too_many_lookups", cust, "12"}}},
		{"spf too many void lookups", setSPF("v=spf1 a:nx1.example-bank.test mx:nx2.example-bank.test exists:nx3.example-bank.test include:" + lab.M365SPFInclude + " include:" + lab.BackupSPFInclude + " -all"), nil,
			[]want{{SeverityCritical, "spf.too_many_void_lookups", cust, "3"}}},
		{"spf deleted", remove(lab.CustomerDomain, dns.TypeTXT), nil,
			[]want{{SeverityCritical, "spf.missing", cust, "NODATA"}}},
		{"spf two records", setSPF(lab.CustomerSPF, "v=spf1 -all"), nil,
			[]want{{SeverityCritical, "spf.multiple", cust, ""}}},
		{"spf syntax", setSPF("v=spf1 include:" + lab.M365SPFInclude + " ip4:300.1.1.1 -all"), nil,
			[]want{{SeverityCritical, "spf.syntax", cust, "ip4:300.1.1.1"}}},
		{"spf SERVFAIL", fault(lab.CustomerDomain, dnsserver.FaultServfail), nil,
			[]want{
				{SeverityCritical, "spf.tempfail", cust, "SERVFAIL"},
				{SeverityError, "mx.tempfail", cust, "SERVFAIL"},
			}},
		{"spf include loop", func(s *dnsserver.Server) error {
			if err := setSPF("v=spf1 include:loop.example-bank.test include:" + lab.M365SPFInclude + " include:" + lab.BackupSPFInclude + " -all")(s); err != nil {
				return err
			}
			return s.Add(txt("loop.example-bank.test", "v=spf1 include:example-bank.test -all"))
		}, nil, []want{{SeverityCritical, "spf.loop", cust, ""}}},
		{"spf +all", setSPF("v=spf1 include:" + lab.M365SPFInclude + " include:" + lab.BackupSPFInclude + " +all"), nil,
			[]want{{SeverityError, "spf.pass_all", cust, "+all"}}},
		{"spf ?all", setSPF("v=spf1 include:" + lab.M365SPFInclude + " include:" + lab.BackupSPFInclude + " ?all"), nil,
			[]want{{SeverityWarning, "spf.neutral_all", cust, "?all"}}},
		{"spf without all", setSPF("v=spf1 include:" + lab.M365SPFInclude + " include:" + lab.BackupSPFInclude), nil,
			[]want{{SeverityWarning, "spf.no_all", cust, ""}}},
		{"spf ptr", setSPF("v=spf1 ptr include:" + lab.M365SPFInclude + " include:" + lab.BackupSPFInclude + " -all"), nil,
			[]want{{SeverityWarning, "spf.ptr", cust, "ptr"}}},
		{"spf redirect without record", setSPF("v=spf1 redirect=nothing.example-bank.test"), nil,
			[]want{{SeverityCritical, "spf.redirect_nxdomain", "nothing.example-bank.test.", "NXDOMAIN"}}},
		{"source ip not authorised", nil, func(d *Domain) { d.SourceIPs = append(d.SourceIPs, net.ParseIP("127.0.0.99")) },
			[]want{{SeverityCritical, "spf.source_not_authorised", cust, "127.0.0.99: fail"}}},

		// DKIM
		{"m365 active key TXT missing", remove(m365Key, dns.TypeTXT), nil,
			[]want{{SeverityCritical, "dkim.cname_dangling", sel1, "NXDOMAIN"}}},
		{"m365 key SERVFAIL", fault(m365Key, dnsserver.FaultServfail), nil,
			[]want{{SeverityCritical, "dkim.tempfail", sel1, "SERVFAIL"}}},
		{"m365 selector CNAME deleted", remove(sel1, dns.TypeCNAME), nil,
			[]want{{SeverityCritical, "dkim.key_missing", sel1, "NXDOMAIN"}}},
		{"relay key deleted", remove(relay, dns.TypeTXT), nil,
			[]want{{SeverityCritical, "dkim.key_missing", relay, "NXDOMAIN"}}},
		{"relay key revoked", setTXT(relay, "v=DKIM1; k=rsa; p="), nil,
			[]want{{SeverityCritical, "dkim.key_revoked", relay, ""}}},
		{"relay key 512 bits", setTXT(relay, rsaKeyTXT(t, 512, "")), nil,
			[]want{{SeverityCritical, "dkim.key_weak", relay, "512"}}},
		{"relay key 1024 bits", setTXT(relay, rsaKeyTXT(t, 1024, "")), nil,
			[]want{{SeverityWarning, "dkim.key_short", relay, "1024"}}},
		{"relay key testing", setTXT(relay, rsaKeyTXT(t, 2048, "t=y; ")), nil,
			[]want{{SeverityWarning, "dkim.testing", relay, "t=y"}}},
		{"relay key two records", setTXT(relay, rsaKeyTXT(t, 2048, ""), rsaKeyTXT(t, 4096, "")), nil,
			[]want{{SeverityCritical, "dkim.multiple_records", relay, ""}}},
		{"relay key garbage", setTXT(relay, "v=DKIM1; k=rsa; p=bm90IGEga2V5"), nil,
			[]want{{SeverityCritical, "dkim.key_invalid", relay, ""}}},
		{"relay key wrong version", setTXT(relay, "v=DKIM2; p=abc"), nil,
			[]want{{SeverityCritical, "dkim.version", relay, "v=DKIM2"}}},
		{"m365 both keys missing, active unknown", remove(m365Key, dns.TypeTXT),
			func(d *Domain) { d.Selectors = []Selector{{Name: "selector1"}, {Name: "selector2"}} },
			[]want{
				{SeverityCritical, "dkim.cname_dangling", sel1, ""},
				{SeverityCritical, "dkim.cname_dangling", sel2, ""},
			}},
		{"configured selector without key", nil,
			func(d *Domain) { d.Selectors = append(d.Selectors, Selector{Name: "old2019"}) },
			[]want{{SeverityError, "dkim.key_missing", "old2019._domainkey.example-bank.test.", "NXDOMAIN"}}},

		// DMARC
		{"dmarc deleted", remove(dmarcN, dns.TypeTXT), nil,
			[]want{{SeverityCritical, "dmarc.missing", dmarcN, "NXDOMAIN"}}},
		{"dmarc SERVFAIL", fault(dmarcN, dnsserver.FaultServfail), nil,
			[]want{{SeverityCritical, "dmarc.tempfail", dmarcN, "SERVFAIL"}}},
		{"dmarc p=none", setTXT(dmarcN[:len(dmarcN)-1], "v=DMARC1; p=none; rua=mailto:"+lab.DMARCRUAAddress), nil,
			[]want{{SeverityWarning, "dmarc.policy_none", dmarcN, "p=none"}}},
		{"dmarc uppercase values are valid", setTXT(dmarcN[:len(dmarcN)-1], "v=DMARC1; p=Reject; ADKIM=S; rua=mailto:"+lab.DMARCRUAAddress), nil, nil},
		{"dmarc two records", setTXT(dmarcN[:len(dmarcN)-1], lab.CustomerDMARC, "v=DMARC1; p=none"), nil,
			[]want{{SeverityCritical, "dmarc.multiple", dmarcN, ""}}},
		{"dmarc syntax", setTXT(dmarcN[:len(dmarcN)-1], "v=DMARC1; p=rejected"), nil,
			[]want{{SeverityCritical, "dmarc.syntax", dmarcN, "p=rejected"}}},
		{"dmarc pct", setTXT(dmarcN[:len(dmarcN)-1], lab.CustomerDMARC+"; pct=25"), nil,
			[]want{{SeverityWarning, "dmarc.pct", dmarcN, "pct=25"}}},
		{"dmarc sp=none", setTXT(dmarcN[:len(dmarcN)-1], lab.CustomerDMARC+"; sp=none"), nil,
			[]want{{SeverityWarning, "dmarc.subdomain_none", dmarcN, "sp=none"}}},
		{"dmarc external rua unauthorised", setTXT(dmarcN[:len(dmarcN)-1], "v=DMARC1; p=reject; rua=mailto:r@dmarc-vendor.test"), nil,
			[]want{{SeverityWarning, "dmarc.rua_unauthorised", "example-bank.test._report._dmarc.dmarc-vendor.test.", "NXDOMAIN"}}},
		{"dmarc external rua authorised", func(s *dnsserver.Server) error {
			if err := setTXT(dmarcN[:len(dmarcN)-1], "v=DMARC1; p=reject; rua=mailto:r@dmarc-vendor.test")(s); err != nil {
				return err
			}
			return s.Add(txt("example-bank.test._report._dmarc.dmarc-vendor.test", "v=DMARC1"))
		}, nil, nil},
		{"sender not aligned", nil, func(d *Domain) {
			d.Senders = append(d.Senders, Sender{Name: "marketing", EnvelopeFrom: "bounce@marketing-tool.test", DKIMDomain: "marketing-tool.test"})
		}, []want{{SeverityCritical, "dmarc.sender_unaligned", dmarcN, "marketing"}}},

		// MX
		{"mx deleted", remove(lab.CustomerDomain, dns.TypeMX), nil,
			[]want{{SeverityWarning, "mx.missing", cust, "NODATA"}}},
		{"null mx", func(s *dnsserver.Server) error {
			return s.Set(lab.CustomerDomain, dns.TypeMX, lab.CustomerDomain+". 300 IN MX 0 .")
		}, nil, []want{{SeverityWarning, "mx.null", cust, "0 ."}}},
		{"null mx mixed", func(s *dnsserver.Server) error {
			return s.Add(lab.CustomerDomain + ". 300 IN MX 0 .")
		}, nil, []want{{SeverityError, "mx.null_mixed", cust, ""}}},
		{"mx host without address", remove(lab.BankMX, dns.TypeA), nil,
			[]want{{SeverityError, "mx.host_unresolvable", lab.BankMX + ".", "NXDOMAIN"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, r := startWorld(t)
			if tc.edit != nil {
				if err := tc.edit(s); err != nil {
					t.Fatal(err)
				}
			}
			d := customer()
			if tc.domain != nil {
				tc.domain(&d)
			}
			rep := runCheck(t, r, d)
			t.Logf("findings:\n%s", dump(rep))
			var got []Finding
			for _, f := range rep.Findings {
				if f.Severity >= SeverityWarning {
					got = append(got, f)
				}
			}
			ok := len(got) == len(tc.want)
			for _, w := range tc.want {
				if w.name == "" {
					w.name = cust
				}
				if !slices.ContainsFunc(got, func(f Finding) bool {
					return f.Severity == w.sev && f.Code == w.code && f.Name == w.name && strings.Contains(f.Data, w.data)
				}) {
					ok = false
				}
			}
			if !ok {
				t.Errorf("want %v\ngot:\n%s", tc.want, dump(rep))
			}
			for _, f := range rep.Findings {
				if f.Message == "" || strings.Contains(f.Message, "\n") || !strings.HasSuffix(f.Message, ".") {
					t.Errorf("finding %s: message %q is not one sentence", f.Code, f.Message)
				}
			}
			if rep.Failed() != slices.ContainsFunc(tc.want, func(w want) bool { return w.sev >= SeverityError }) {
				t.Errorf("Failed() = %v", rep.Failed())
			}
		})
	}
}

func TestCause(t *testing.T) {
	s, r := startWorld(t)
	s.SetFault(lab.M365SPFInclude, dnsserver.FaultServfail)
	s.Remove(lab.M365SelectorTarget(lab.M365ActiveSelector), dns.TypeTXT)
	rep := runCheck(t, r, customer())
	f, ok := rep.Cause("spf")
	if !ok || f.Name != lab.M365SPFInclude+"." || f.Data != "SERVFAIL" || !strings.Contains(f.Message, lab.M365SPFInclude) {
		t.Errorf("Cause(spf) = %+v, %v", f, ok)
	}
	f, ok = rep.Cause("dkim")
	if !ok || f.Name != "selector1._domainkey."+lab.CustomerDomain+"." || f.Code != "dkim.cname_dangling" {
		t.Errorf("Cause(dkim) = %+v, %v", f, ok)
	}
	if f, ok := rep.Cause("dmarc"); ok {
		t.Errorf("Cause(dmarc) = %+v on a healthy DMARC record", f)
	}
	if _, ok := rep.Cause("dkim.m365"); ok {
		t.Error("Cause matched a note")
	}

	for _, tc := range []struct{ spf, dkim, dmarc, want string }{
		{"temperror", "pass", "pass", "The SPF include spf.protection.outlook.test answers SERVFAIL"},
		{"pass", "permerror", "fail", "selector1._domainkey.example-bank.test is a CNAME to " + lab.M365SelectorTarget(lab.M365ActiveSelector) + ", which has no TXT record"},
		{"temperror", "fail", "fail", "The SPF include"},
		{"pass", "pass", "fail", ""}, // DMARC itself is fine here
		{"pass", "pass", "pass", ""},
		{"", "", "", ""},
	} {
		got := rep.Explain(tc.spf, tc.dkim, tc.dmarc)
		if (tc.want == "") != (got == "") || !strings.HasPrefix(got, tc.want) {
			t.Errorf("Explain(%s, %s, %s) = %q, want prefix %q", tc.spf, tc.dkim, tc.dmarc, got, tc.want)
		}
	}
}

func TestOrgDomainFallback(t *testing.T) {
	s, r := startWorld(t)
	sub := "mail." + lab.CustomerDomain
	if err := s.Add(txt(sub, "v=spf1 include:"+lab.M365SPFInclude+" -all")); err != nil {
		t.Fatal(err)
	}
	rep := runCheck(t, r, Domain{Name: sub})
	notes := rep.Has("dmarc.org_fallback")
	if len(notes) != 1 || notes[0].Name != "_dmarc.example-bank.test." || len(rep.Has("dmarc.missing")) != 0 {
		t.Errorf("want the org-domain DMARC record applied:\n%s", dump(rep))
	}
	// The organizational domain's sp= governs its subdomains.
	s.Set("_dmarc."+lab.CustomerDomain, dns.TypeTXT, txt("_dmarc."+lab.CustomerDomain, lab.CustomerDMARC+"; sp=none"))
	r2 := runCheck(t, r, Domain{Name: sub})
	if len(r2.Has("dmarc.policy_none")) != 1 {
		t.Errorf("want sp=none applied to the subdomain:\n%s", dump(r2))
	}
	// Neither record: missing, named at the subdomain.
	s.Remove("_dmarc."+lab.CustomerDomain, dns.TypeTXT)
	r3 := runCheck(t, r, Domain{Name: sub})
	if m := r3.Has("dmarc.missing"); len(m) != 1 || m[0].Name != "_dmarc."+sub+"." {
		t.Errorf("want dmarc.missing at the subdomain:\n%s", dump(r3))
	}
}

func TestInvalidDomain(t *testing.T) {
	_, r := startWorld(t)
	for _, name := range []string{"", "bad domain.test", "a..b.test"} {
		rep := runCheck(t, r, Domain{Name: name})
		if len(rep.Findings) != 1 || rep.Findings[0].Code != "domain.invalid" || !rep.Failed() {
			t.Errorf("%q: %v", name, rep.Findings)
		}
	}
}

func TestReportJSON(t *testing.T) {
	_, r := startWorld(t)
	d := customer()
	d.Selectors = append(d.Selectors, Selector{Name: "old2019"})
	b, err := json.Marshal(runCheck(t, r, d))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if f := back.Has("dkim.key_missing"); len(f) != 1 || f[0].Severity != SeverityError {
		t.Errorf("round trip lost the finding: %s", b)
	}
	if !strings.Contains(string(b), `"severity":"error"`) {
		t.Errorf("severity not written as a word: %s", b)
	}
}
