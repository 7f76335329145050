package dnswatch

import (
	"net"
	"testing"

	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/targets"
)

func TestDomainsFromConfig(t *testing.T) {
	cfg := &targets.Config{Senders: []targets.Sender{
		{Name: lab.SenderM365, Preset: targets.PresetM365, From: "Example Bank <" + lab.OTPFrom + ">"},
		{Name: lab.SenderBackup, From: lab.OTPFrom, EnvelopeFrom: lab.BounceAddress},
		{Name: "other", From: "noreply@Other.test"},
		{Name: "broken", From: "not an address"},
	}}
	ds := domainsFromConfig(cfg)
	if len(ds) != 2 || ds[0].Name != lab.CustomerDomain || ds[1].Name != "other.test" {
		t.Fatalf("domains = %+v", ds)
	}
	d := ds[0]
	if len(d.Senders) != 2 || d.Senders[0].EnvelopeFrom != lab.CustomerDomain || d.Senders[1].EnvelopeFrom != lab.BounceAddress ||
		d.Senders[1].DKIMDomain != lab.CustomerDomain {
		t.Errorf("senders = %+v", d.Senders)
	}
	if len(d.Selectors) != 2 || d.Selectors[0].Active {
		t.Errorf("selectors = %+v, want the inactive M365 pair", d.Selectors)
	}
	d.AddSelector("SELECTOR1", true)
	d.AddSelector(lab.BackupSelector, true)
	d.AddSelector("selector1", false) // never downgrades
	if len(d.Selectors) != 3 || !d.Selectors[0].Active || !d.Selectors[2].Active {
		t.Errorf("after AddSelector: %+v", d.Selectors)
	}
	d.AddSourceIP(net.ParseIP(lab.M365IP))
	d.AddSourceIP(net.ParseIP(lab.M365IP))
	d.AddSourceIP(nil)
	if len(d.SourceIPs) != 1 {
		t.Errorf("source IPs = %v", d.SourceIPs)
	}
}
