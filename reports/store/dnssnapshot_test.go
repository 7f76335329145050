package store

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/verify/dnscheck"
)

func report(domain string, at time.Time, spf string) dnscheck.Report {
	return dnscheck.Report{
		Domain: domain, CheckedAt: at,
		Findings: []dnscheck.Finding{{Severity: dnscheck.SeverityCritical, Code: "spf.include_tempfail",
			Name: "spf.protection.outlook.test.", Data: "SERVFAIL", Message: "m"}},
		Records: []dnscheck.RRset{{Name: domain + ".", Type: "TXT", Rcode: "NOERROR", Data: []string{spf}}},
	}
}

func TestDNSSnapshots(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

	if _, ok, err := s.LatestDNSSnapshot(ctx, "example.test"); ok || err != nil {
		t.Fatalf("empty store: ok=%v err=%v", ok, err)
	}
	for i, spf := range []string{"v=spf1 -all", "v=spf1 a -all", "v=spf1 mx -all"} {
		if err := s.SaveDNSSnapshot(ctx, report("example.test", t0.Add(time.Duration(i)*5*time.Minute), spf)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SaveDNSSnapshot(ctx, report("other.test", t0.Add(time.Hour), "v=spf1 ?all")); err != nil {
		t.Fatal(err)
	}
	latest, ok, err := s.LatestDNSSnapshot(ctx, "example.test")
	if err != nil || !ok || latest.Records[0].Data[0] != "v=spf1 mx -all" {
		t.Fatalf("latest = %+v, %v, %v", latest, ok, err)
	}
	if !reflect.DeepEqual(latest, report("example.test", t0.Add(10*time.Minute), "v=spf1 mx -all")) {
		t.Errorf("round trip changed the report: %+v", latest)
	}
	for _, tc := range []struct {
		at   time.Duration
		want string
	}{{-time.Hour, "v=spf1 -all"}, {2 * time.Minute, "v=spf1 -all"}, {3 * time.Minute, "v=spf1 a -all"}, {9 * time.Minute, "v=spf1 mx -all"}, {time.Hour, "v=spf1 mx -all"}} {
		got, ok, err := s.DNSSnapshotAt(ctx, "example.test", t0.Add(tc.at))
		if err != nil || !ok || got.Records[0].Data[0] != tc.want {
			t.Errorf("snapshot at %v = %v, %v, %v; want %q", tc.at, got.Records, ok, err, tc.want)
		}
	}

	if _, ok, _ := s.DNSBaseline(ctx, "example.test"); ok {
		t.Error("baseline before any pin")
	}
	for _, spf := range []string{"v=spf1 -all", "v=spf1 a -all"} {
		if err := s.PinDNSBaseline(ctx, report("example.test", t0, spf), t0); err != nil {
			t.Fatal(err)
		}
	}
	if b, ok, err := s.DNSBaseline(ctx, "example.test"); err != nil || !ok || b.Records[0].Data[0] != "v=spf1 a -all" {
		t.Errorf("baseline = %v, %v, %v; want the second pin", b.Records, ok, err)
	}

	before := report("example.test", t0, "v=spf1 -all").Records
	after := report("example.test", t0, "v=spf1 a -all").Records
	var changes []DNSChange
	for _, c := range dnscheck.Diff(before, after) {
		changes = append(changes, DNSChange{Domain: "example.test", DetectedAt: t0.Add(5 * time.Minute), Against: AgainstPrevious, Change: c})
	}
	changes = append(changes, DNSChange{Domain: "example.test", DetectedAt: t0.Add(5 * time.Minute), Against: AgainstBaseline,
		Change: dnscheck.Change{Name: "_dmarc.example.test.", Type: "TXT", Before: &before[0]}})
	if err := s.SaveDNSChanges(ctx, changes); err != nil {
		t.Fatal(err)
	}
	got, err := s.DNSChanges(ctx, "example.test", t0)
	if err != nil || !reflect.DeepEqual(got, changes) {
		t.Errorf("changes = %+v, %v\nwant %+v", got, err, changes)
	}
	if got, _ := s.DNSChanges(ctx, "example.test", t0.Add(6*time.Minute)); len(got) != 0 {
		t.Errorf("changes since later = %+v, want none", got)
	}
	// A window across domains, oldest first; the domain filter and the
	// window's end hold.
	other := DNSChange{Domain: "other.test", DetectedAt: t0.Add(3 * time.Minute), Against: AgainstPrevious,
		Change: dnscheck.Change{Name: "other.test.", Type: "TXT", Before: &before[0]}}
	if err := s.SaveDNSChanges(ctx, []DNSChange{other}); err != nil {
		t.Fatal(err)
	}
	all, err := s.DNSChangesBetween(ctx, nil, t0, t0.Add(10*time.Minute))
	if err != nil || len(all) != len(changes)+1 || !reflect.DeepEqual(all[0], other) || !reflect.DeepEqual(all[1:], changes) {
		t.Errorf("changes between = %+v, %v; want other.test's, then example.test's", all, err)
	}
	if got, _ := s.DNSChangesBetween(ctx, []string{"other.test"}, t0, t0.Add(10*time.Minute)); len(got) != 1 || got[0].Domain != "other.test" {
		t.Errorf("changes of other.test = %+v", got)
	}
	if got, _ := s.DNSChangesBetween(ctx, nil, t0, t0.Add(4*time.Minute)); len(got) != 1 || got[0].Domain != "other.test" {
		t.Errorf("changes before 4m = %+v, want other.test's only", got)
	}
	if err := s.SaveDNSChanges(ctx, []DNSChange{{Domain: "x.test", Against: "yesterday"}}); err == nil {
		t.Error("a change against an unknown reference was stored")
	}
}
