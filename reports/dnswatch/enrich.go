package dnswatch

import (
	"context"
	"net"
	"strings"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/verify/diagnose"
)

// Enrich is the engine's Enricher: it sets a.Diagnosis, "" for a healthy
// attempt. Selectors seen signing the canary and the address that
// delivered it are learned first, so the DNS report it reads covers them;
// the report is the last one when recent enough, else a fresh check.
func (w *Watcher) Enrich(ctx context.Context, a *attempt.Attempt) {
	ev := diagnose.Evidence{Attempt: a}
	w.mu.Lock()
	domain := w.senderOf[a.Sender]
	w.mu.Unlock()
	if domain != "" && a.Header != "" {
		w.learnFrom(domain, a.Sender, a.Header)
	}
	if diagnose.Healthy(ev) {
		a.Diagnosis = ""
		return
	}
	w.mu.Lock()
	known := w.seen[a.Sender]
	w.mu.Unlock()
	ev.KnownSource, ev.KnownSigners = known.source, known.signers
	if domain != "" && (diagnose.AuthFailing(ev) || ev.Outcome == attempt.OutcomeLost || ev.Outcome == attempt.OutcomeBounced) {
		if rep, ok := w.Report(ctx, domain); ok {
			ev.DNS = &rep
			// A zone can break between two scheduled checks: when the
			// last report does not explain the failure, look again.
			if _, _, found := diagnose.DNSCause(ev); !found && diagnose.AuthFailing(ev) && w.opts.Now().Sub(rep.CheckedAt) > recheckAfter {
				rep, _ = w.report(ctx, domain, recheckAfter)
				ev.DNS = &rep
			}
		}
	}
	if ev.DNS != nil {
		ev.Changes, ev.ChangedAt = w.LastChanges(domain)
	}
	a.Diagnosis = diagnose.Diagnose(ev)
}

// seenFrom is what a sender's last delivered canary showed.
type seenFrom struct {
	source  string
	signers []diagnose.Signature
}

// learnFrom records the selectors and source address of a delivered
// canary of sender, for the domain's checks and for diagnosing the
// sender's canaries that never arrive.
func (w *Watcher) learnFrom(domain, sender, header string) {
	src := ""
	if ip := diagnose.SourceIP(header); ip != nil {
		src = ip.String()
	}
	sigs := diagnose.Signatures(header)
	for _, s := range sigs {
		if s.Domain == domain {
			w.Learn(domain, s.Selector, src)
		}
	}
	w.Learn(domain, "", src)
	w.mu.Lock()
	w.seen[sender] = seenFrom{source: src, signers: sigs}
	w.mu.Unlock()
}

// recheckAfter is how old a report that does not explain a failing
// verdict may be before a diagnosis checks again; it bounds the checks a
// failure that is not DNS's (a broken body hash) can cause.
const recheckAfter = 10 * time.Second

func parseIP(s string) net.IP {
	if s == "" {
		return nil
	}
	return net.ParseIP(strings.TrimSpace(s))
}
