package dnscheck

import (
	"testing"

	"github.com/miekg/dns"
	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/lab/dnsserver"
)

func TestDiffDetectsZoneEdits(t *testing.T) {
	s, r := startWorld(t)
	base := runCheck(t, r, customer()).Records
	if ch := Diff(base, runCheck(t, r, customer()).Records); len(ch) != 0 {
		t.Fatalf("unchanged world: %d changes: %+v", len(ch), ch)
	}
	// TTL-only edits are not changes.
	s.Set("_dmarc."+lab.CustomerDomain, dns.TypeTXT, "_dmarc."+lab.CustomerDomain+`. 60 IN TXT "`+lab.CustomerDMARC+`"`)
	if ch := Diff(base, runCheck(t, r, customer()).Records); len(ch) != 0 {
		t.Errorf("TTL change reported: %+v", ch)
	}

	// An incident: the M365 include answers SERVFAIL and DMARC is edited.
	s.SetFault(lab.M365SPFInclude, dnsserver.FaultServfail)
	s.Set("_dmarc."+lab.CustomerDomain, dns.TypeTXT, txt("_dmarc."+lab.CustomerDomain, "v=DMARC1; p=none"))
	changes := Diff(base, runCheck(t, r, customer()).Records)
	got := map[string]Change{}
	for _, c := range changes {
		got[c.Name+" "+c.Type] = c
	}
	inc := got[lab.M365SPFInclude+". TXT"]
	if inc.Before == nil || inc.After == nil || inc.Before.Rcode != "NOERROR" || inc.After.Rcode != "SERVFAIL" {
		t.Errorf("include change = %+v", inc)
	}
	dm := got["_dmarc."+lab.CustomerDomain+". TXT"]
	if dm.After == nil || len(dm.After.Data) != 1 || dm.After.Data[0] != "v=DMARC1; p=none" || dm.Before.Data[0] != lab.CustomerDMARC {
		t.Errorf("dmarc change = %+v", dm)
	}
	if len(changes) != 2 {
		t.Errorf("%d changes, want 2: %+v", len(changes), changes)
	}

	// Sets read only on one side appear with a nil side.
	added := []RRset{{Name: "new.test.", Type: "TXT", Rcode: "NOERROR", Data: []string{"x"}}}
	ch := Diff(nil, added)
	if len(ch) != 1 || ch[0].Before != nil || ch[0].After == nil {
		t.Errorf("Diff(nil, added) = %+v", ch)
	}
	ch = Diff(added, nil)
	if len(ch) != 1 || ch[0].Before == nil || ch[0].After != nil {
		t.Errorf("Diff(added, nil) = %+v", ch)
	}
}
