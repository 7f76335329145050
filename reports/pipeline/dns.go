package pipeline

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/otpprobe/otpprobe/reports/alert"
	"github.com/otpprobe/otpprobe/reports/dnswatch"
	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/verify/dnscheck"
)

// DNSChanged turns a DNS watcher change event into alerts
// (dnswatch.Options.OnChange). Every change is notified as an
// OTPDNSRecordChanged event (fired and resolved at once: a change is an
// event, not a state), and OTPDNSCriticalFinding follows the critical
// findings of the check that saw it: firing while there are any, resolved
// by the change that fixes them. It does not block: the alerts are stored
// on a goroutine of their own, in order, which ends when Run returns.
func (p *Pipeline) DNSChanged(ev dnswatch.Event) {
	p.dnsOnce.Do(func() {
		p.dnsEvents = make(chan dnswatch.Event, 256)
		go func() {
			for {
				select {
				case <-p.stopped:
					return
				case ev := <-p.dnsEvents:
					p.dnsAlerts(context.Background(), ev)
				}
			}
		}()
	})
	select {
	case p.dnsEvents <- ev:
	default:
		p.opts.Logger.Error("DNS change alerts queue full; event dropped", "domain", ev.Domain)
	}
}

func (p *Pipeline) dnsAlerts(ctx context.Context, ev dnswatch.Event) {
	if ev.Against == store.AgainstBaseline {
		return // the same drift, seen against the pinned baseline
	}
	senders := strings.Join(ev.Senders, ",")
	kinds := map[string][]string{}
	for _, c := range ev.Changes {
		k := dnswatch.RecordKind(ev.Domain, c.Name, c.Type)
		kinds[k] = append(kinds[k], describeChange(c))
	}
	for _, k := range sortedKeys(kinds) {
		labels := map[string]string{"domain": ev.Domain, "record": k, "severity": "info"}
		a := alert.Alert{Name: alert.DNSChanged, Labels: labels,
			Summary:   fmt.Sprintf("the %s records of %s changed (senders %s)", k, ev.Domain, senders),
			Diagnosis: strings.Join(kinds[k], "; ")}
		if err := p.Alerts.Fire(ctx, a); err != nil {
			p.opts.Logger.Error("alert", "err", err)
		}
		if err := p.Alerts.Resolve(ctx, alert.DNSChanged, labels, ""); err != nil {
			p.opts.Logger.Error("alert", "err", err)
		}
	}
	var critical []string
	for _, f := range ev.Report.Findings {
		if f.Severity >= dnscheck.SeverityError {
			critical = append(critical, f.Message)
		}
	}
	labels := map[string]string{"domain": ev.Domain, "severity": "page"}
	var err error
	if len(critical) == 0 {
		err = p.Alerts.Resolve(ctx, alert.DNSCritical, labels, fmt.Sprintf("no critical DNS finding for %s any more", ev.Domain))
	} else {
		var changed []string
		for _, k := range sortedKeys(kinds) {
			changed = append(changed, kinds[k]...)
		}
		err = p.Alerts.Fire(ctx, alert.Alert{Name: alert.DNSCritical, Labels: labels,
			Summary:   fmt.Sprintf("%d critical DNS finding(s) for %s (senders %s): %s", len(critical), ev.Domain, senders, critical[0]),
			Diagnosis: strings.Join(critical, " ") + " Changed: " + strings.Join(changed, "; ")})
	}
	if err != nil {
		p.opts.Logger.Error("alert", "err", err)
	}
}

func describeChange(c dnscheck.Change) string {
	return fmt.Sprintf("%s %s: %s -> %s", strings.TrimSuffix(c.Name, "."), c.Type, rrText(c.Before), rrText(c.After))
}

func rrText(r *dnscheck.RRset) string {
	if r == nil {
		return "(none)"
	}
	if len(r.Data) == 0 {
		return r.Rcode
	}
	return strings.Join(r.Data, " | ")
}

func sortedKeys(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
