package dnscheck_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/verify/dnscheck"
)

// TestLabScenarios runs the checks against the real lab world: healthy is
// clean, and every DNS scenario produces the critical finding that names
// the broken record.
func TestLabScenarios(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := lab.Start(ctx, lab.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	customer := dnscheck.Domain{
		Name: lab.CustomerDomain,
		Selectors: []dnscheck.Selector{
			{Name: lab.M365ActiveSelector, Active: true},
			{Name: lab.M365InactiveSelector},
			{Name: lab.BackupSelector, Active: true},
		},
		SourceIPs: []net.IP{net.ParseIP(lab.M365IP), net.ParseIP(lab.BackupIP)},
		Senders: []dnscheck.Sender{
			{Name: lab.SenderM365, EnvelopeFrom: lab.OTPFrom, DKIMDomain: lab.CustomerDomain},
			{Name: lab.SenderBackup, EnvelopeFrom: lab.BounceAddress, DKIMDomain: lab.CustomerDomain},
		},
	}
	type cause struct{ check, code, name, data string }
	tests := []struct {
		scenario string
		causes   []cause // Report.Cause of each check; none means a clean report
	}{
		{lab.Healthy, nil},
		{"m365-spf-include-servfail", []cause{{"spf", "spf.include_tempfail", lab.M365SPFInclude + ".", "SERVFAIL"}}},
		{"m365-dkim-txt-missing", []cause{{"dkim", "dkim.cname_dangling", "selector1._domainkey." + lab.CustomerDomain + ".", "NXDOMAIN"}}},
		{"m365-spf-and-dkim-broken", []cause{
			{"spf", "spf.include_tempfail", lab.M365SPFInclude + ".", "SERVFAIL"},
			{"dkim", "dkim.cname_dangling", "selector1._domainkey." + lab.CustomerDomain + ".", "NXDOMAIN"},
		}},
		{"m365-dns-records-removed", []cause{
			{"spf", "spf.source_not_authorised", lab.CustomerDomain + ".", lab.M365IP},
			{"dkim", "dkim.key_missing", "selector1._domainkey." + lab.CustomerDomain + ".", "NXDOMAIN"},
		}},
		{"dmarc-record-removed", []cause{{"dmarc", "dmarc.missing", "_dmarc." + lab.CustomerDomain + ".", "NXDOMAIN"}}},
		{"spf-too-many-lookups", []cause{{"spf", "spf.too_many_lookups", lab.CustomerDomain + ".", "12"}}},
		{"m365-outage", nil}, // not a DNS incident: DNS stays clean
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			if err := w.Reset(); err != nil {
				t.Fatal(err)
			}
			if err := w.Apply(tc.scenario); err != nil {
				t.Fatal(err)
			}
			rep := dnscheck.CheckDomain(ctx, w.Resolver(), customer)
			if len(tc.causes) == 0 && rep.Failed() {
				t.Errorf("findings in %s:\n%v", tc.scenario, rep.Findings)
			}
			for _, want := range tc.causes {
				f, ok := rep.Cause(want.check)
				if !ok || f.Severity != dnscheck.SeverityCritical || f.Code != want.code || f.Name != want.name || !strings.Contains(f.Data, want.data) {
					t.Errorf("Cause(%s) = %+v, %v; want %s at %s with %q\nall: %v", want.check, f, ok, want.code, want.name, want.data, rep.Findings)
				}
			}
		})
	}
}
