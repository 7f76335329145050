package pipeline_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/reports/alert"
	"github.com/otpprobe/otpprobe/reports/dnswatch"
	"github.com/otpprobe/otpprobe/reports/pipeline"
	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
	"github.com/otpprobe/otpprobe/verify/dnscheck"
)

const dnsConfig = `
senders:
  - {name: m365, host: smtp.example.com, auth: {username: u, password: p}, from: otp@example.com}
mailboxes:
  - {name: gmail, provider: gmail, address: seed@gmail.example, auth: {username: u, password: p}}
probes:
  - {name: otp, schedule: "@every 1m", senders: [m365], mailboxes: [gmail]}
`

// TestDNSChangeAlerts: a change is notified as an event; a critical
// finding fires until the change that fixes it.
func TestDNSChangeAlerts(t *testing.T) {
	cfg, err := targets.Parse([]byte(dnsConfig), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "otpprobe.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec := &recorder{}
	p, err := pipeline.New(context.Background(), cfg, pipeline.Options{Store: st, Notifiers: []alert.Notifier{rec}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Alerts.Run(ctx) }()
	defer func() { cancel(); <-done }()
	include := "spf.protection.outlook.test."
	broken := dnswatch.Event{Domain: "example.com", Senders: []string{"m365"}, At: time.Now(), Against: store.AgainstPrevious,
		Changes: []dnscheck.Change{{Name: include, Type: "TXT",
			Before: &dnscheck.RRset{Name: include, Type: "TXT", Rcode: "NOERROR", Data: []string{"v=spf1 ip4:127.0.0.11 -all"}},
			After:  &dnscheck.RRset{Name: include, Type: "TXT", Rcode: "SERVFAIL"}}},
		Report: dnscheck.Report{Domain: "example.com", Findings: []dnscheck.Finding{{Severity: dnscheck.SeverityCritical,
			Code: "spf.include_servfail", Name: include, Message: "The SPF include spf.protection.outlook.test answers SERVFAIL."}}}}
	p.DNSChanged(broken)
	p.DNSChanged(dnswatch.Event{Domain: "example.com", Against: store.AgainstBaseline, Changes: broken.Changes, Report: broken.Report})
	waitFiring := func(want int) []alert.Alert {
		deadline := time.Now().Add(10 * time.Second)
		for {
			f := p.Alerts.Firing()
			if len(f) == want {
				return f
			}
			if time.Now().After(deadline) {
				t.Fatalf("firing %+v, want %d", f, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	f := waitFiring(1)
	if f[0].Name != alert.DNSCritical || !strings.Contains(f[0].Diagnosis, "SERVFAIL") ||
		!strings.Contains(f[0].Diagnosis, "spf.protection.outlook.test TXT: v=spf1 ip4:127.0.0.11 -all -> SERVFAIL") {
		t.Errorf("critical alert %+v", f[0])
	}
	fixed := broken
	fixed.Changes = []dnscheck.Change{{Name: include, Type: "TXT", Before: broken.Changes[0].After, After: broken.Changes[0].Before}}
	fixed.Report.Findings = nil
	p.DNSChanged(fixed)
	waitFiring(0)
	want := "OTPDNSRecordChanged firing, OTPDNSRecordChanged resolved, OTPDNSCriticalFinding firing, " +
		"OTPDNSRecordChanged firing, OTPDNSRecordChanged resolved, OTPDNSCriticalFinding resolved"
	deadline := time.Now().Add(10 * time.Second)
	for rec.String() != want {
		if time.Now().After(deadline) {
			t.Fatalf("notified %q, want %q", rec.String(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recorder is a notifier that keeps what it is sent.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) Name() string             { return "test:recorder" }
func (r *recorder) Accepts(kind string) bool { return kind == alert.KindAlert }
func (r *recorder) Notify(_ context.Context, _ string, payload []byte) error {
	var e alert.Event
	if err := json.Unmarshal(payload, &e); err != nil {
		return err
	}
	r.mu.Lock()
	r.got = append(r.got, e.Alert.Name+" "+e.Alert.Status)
	r.mu.Unlock()
	return nil
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.got, ", ")
}
