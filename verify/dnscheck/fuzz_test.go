package dnscheck

import (
	"testing"
)

// The parsers read records anyone can publish: they must never panic.

func FuzzParseSPF(f *testing.F) {
	for _, s := range []string{"v=spf1 -all", "v=spf1 a:%{d}/24//64 mx:x.test ip6:::1/128 redirect=x.test", "v=spf1 ~", "v=spf1 a/", "v=spf1 ip4:1.2.3.4/", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		terms, err := parseSPF(s)
		if err == nil {
			for _, term := range terms {
				expandDomain(term.arg, "example-bank.test.", "example-bank.test.")
			}
		}
	})
}

func FuzzParseDMARC(f *testing.F) {
	for _, s := range []string{"v=DMARC1; p=reject", "v=DMARC1; p=none; pct=; rua=mailto:", "v", ";;=;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parseDMARC(s)
		parseTags(s)
	})
}

func FuzzParseSTSPolicy(f *testing.F) {
	f.Add([]byte(goodPolicy))
	f.Add([]byte("version: STSv1\nmx\n:"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if pol, err := parseSTSPolicy(b); err == nil {
			stsMatches(pol.mx, "mx.example-bank.test.")
		}
	})
}
