package dnscheck

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseSPF(t *testing.T) {
	valid := []struct {
		rec   string
		terms int
	}{
		{"v=spf1 -all", 1},
		{"V=SPF1 IP4:192.0.2.0/24 ip6:2001:db8::/32 ~ALL", 3},
		{"v=spf1 a mx a:mail.test/24 mx:mx.test//64 a/24//64 ptr ptr:x.test -all", 8},
		{"v=spf1 include:_spf.google.test exists:%{i}._spf.x.test redirect=_spf.x.test", 3},
		{"v=spf1 exp=explain.test unknown-mod=anything ?all", 3},
		{"v=spf1", 0},
	}
	for _, tc := range valid {
		terms, err := parseSPF(tc.rec)
		if err != nil || len(terms) != tc.terms {
			t.Errorf("parseSPF(%q) = %d terms, %v; want %d", tc.rec, len(terms), err, tc.terms)
		}
	}
	invalid := map[string]string{
		"v=spf1 include -all":                    "include needs a domain",
		"v=spf1 ip4:2001:db8::1 -all":            "bad ip4 address",
		"v=spf1 ip6:192.0.2.1 -all":              "bad ip6 address",
		"v=spf1 ip4:192.0.2.0/33 -all":           "bad prefix length",
		"v=spf1 a/40 -all":                       "bad IPv4 prefix length",
		"v=spf1 mx//129 -all":                    "bad IPv6 prefix length",
		"v=spf1 all:x.test":                      "all takes no argument",
		"v=spf1 foo:x.test -all":                 "unknown mechanism",
		"v=spf1 redirect=a.test redirect=b.test": "redirect= appears twice",
		"v=spf1 redirect= -all":                  "redirect= without a domain",
		"v=spf1 1bad=x -all":                     "invalid modifier",
	}
	for rec, want := range invalid {
		if _, err := parseSPF(rec); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseSPF(%q) error = %v, want %q", rec, err, want)
		}
	}
	if got := spfRecords([]string{"v=spf1 -all", "v=spf10 -all", "V=SPF1", "spf1", "google-site-verification=x"}); len(got) != 2 {
		t.Errorf("spfRecords = %q, want 2", got)
	}
}

func TestExpandDomain(t *testing.T) {
	for spec, want := range map[string]string{
		"_spf.%{d}":        "_spf.example-bank.test",
		"%{o}.rep.test":    "example-bank.test.rep.test",
		"plain.test":       "plain.test",
		"%{i}._spf.x.test": "",
		"%{l}.x.test":      "",
		"bad%":             "",
	} {
		got, ok := expandDomain(spec, "example-bank.test.", "example-bank.test.")
		if ok != (want != "") || got != want {
			t.Errorf("expandDomain(%q) = %q, %v; want %q", spec, got, ok, want)
		}
	}
}

func TestOrgDomain(t *testing.T) {
	for in, want := range map[string]string{
		"example-bank.test.":      "example-bank.test.",
		"mail.example-bank.test.": "example-bank.test.",
		"a.b.examplebank.co.uk.":  "examplebank.co.uk.",
		"Mail.Example.COM":        "example.com.",
		"co.uk.":                  "co.uk.",
		"a.foo.github.io.":        "foo.github.io.", // PSL private section
	} {
		if got := orgDomain(in); got != want {
			t.Errorf("orgDomain(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseDMARC(t *testing.T) {
	rec, err := parseDMARC("v=DMARC1; p=Reject; SP=quarantine; adkim=S; pct=100; rua=mailto:a@x.test,mailto:b@y.test")
	if err != nil || rec.Policy != "reject" || rec.SubdomainPolicy != "quarantine" || rec.DKIMAlignment != "s" || len(rec.ReportURIAggregate) != 2 {
		t.Errorf("parseDMARC = %+v, %v", rec, err)
	}
	for _, bad := range []string{"p=reject; v=DMARC1", "v=DMARC1", "v=DMARC1; p=maybe", "v=DMARC1; p=reject; pct=101", "v=DMARC1; p=reject; nonsense"} {
		if _, err := parseDMARC(bad); err == nil {
			t.Errorf("parseDMARC(%q) accepted", bad)
		}
	}
}

func TestSeverityText(t *testing.T) {
	for _, s := range []Severity{SeverityNote, SeverityWarning, SeverityError, SeverityCritical} {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back Severity
		if err := json.Unmarshal(b, &back); err != nil || back != s {
			t.Errorf("round trip of %s: %s -> %v, %v", s, b, back, err)
		}
	}
	if _, err := json.Marshal(Severity(0)); err == nil {
		t.Error("marshalled severity 0")
	}
	var s Severity
	if err := json.Unmarshal([]byte(`"fatal"`), &s); err == nil || !strings.Contains(err.Error(), "fatal") {
		t.Errorf("unmarshal fatal: %v", err)
	}
}

func TestSortFindings(t *testing.T) {
	fs := []Finding{
		{Severity: SeverityNote, Code: "b"},
		{Severity: SeverityCritical, Code: "z"},
		{Severity: SeverityCritical, Code: "a"},
		{Severity: SeverityWarning, Code: "a"},
	}
	sortFindings(fs)
	var got []string
	for _, f := range fs {
		got = append(got, f.Severity.String()+"/"+f.Code)
	}
	if strings.Join(got, " ") != "critical/a critical/z warning/a note/b" {
		t.Errorf("order = %v", got)
	}
}
