package dnswatch

import (
	"context"
	"fmt"
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
		w.learnFrom(domain, a.Sender, a.Header, seenAt(a))
	}
	if diagnose.Healthy(ev) {
		a.Diagnosis = ""
		return
	}
	w.mu.Lock()
	known := w.seen[a.Sender]
	w.mu.Unlock()
	ev.KnownSource, ev.KnownSigners, ev.KnownAt = known.source, known.signers, known.at
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
	at      time.Time
}

func seenAt(a *attempt.Attempt) time.Time {
	if !a.SeenAt.IsZero() {
		return a.SeenAt
	}
	return a.CreatedAt
}

// learnFrom records the selectors and source address of a delivered
// canary of sender, for the domain's checks and for diagnosing the
// sender's canaries that never arrive.
func (w *Watcher) learnFrom(domain, sender, header string, at time.Time) {
	src := ""
	if ip := diagnose.SourceIP(header); ip != nil {
		src = ip.String()
	}
	sigs := diagnose.Signatures(header)
	for _, s := range sigs {
		if s.Domain == domain {
			w.Learn(domain, s.Selector, src)
			w.noteLearned(domain, kindSelector+" "+strings.ToLower(s.Selector), sender, at)
		}
	}
	w.Learn(domain, "", src)
	if src != "" {
		w.noteLearned(domain, kindSourceIP+" "+src, sender, at)
	}
	w.mu.Lock()
	if cur, ok := w.seen[sender]; !ok || !at.Before(cur.at) {
		// A receiver that names no address (or no signature) does not
		// make the sender's known one unknown.
		if src == "" {
			src = cur.source
		}
		if len(sigs) == 0 {
			sigs = cur.signers
		}
		w.seen[sender] = seenFrom{source: src, signers: sigs, at: at}
	}
	w.mu.Unlock()
}

func (w *Watcher) noteLearned(domain, key, sender string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.learned[domain]
	if m == nil {
		m = map[string]learnedFrom{}
		w.learned[domain] = m
	}
	if cur, ok := m[key]; !ok || !at.Before(cur.at) {
		m[key] = learnedFrom{sender: sender, at: at}
	}
}

// Lister is the part of the attempt store LearnFromStore reads.
type Lister interface {
	List(ctx context.Context, f attempt.Filter) ([]*attempt.Attempt, error)
}

// learnWindow is how far back LearnFromStore looks: long enough to cover
// a quiet night, short enough that a retired selector or relay drops out.
const learnWindow = 24 * time.Hour

// LearnFromStore learns, from the canaries delivered in the last day
// (inbox or junk, as stored), the selectors that signed each sender's
// mail and the addresses that delivered it: what a watcher that ran then
// learned, for a fresh process (`check dns --config`, a restarted `run`).
func (w *Watcher) LearnFromStore(ctx context.Context, st Lister) error {
	from := w.opts.Now().Add(-learnWindow)
	for sender, domain := range w.senderOf {
		for _, o := range []attempt.Outcome{attempt.OutcomeInbox, attempt.OutcomeSpam} {
			as, err := st.List(ctx, attempt.Filter{From: from, Sender: sender, Outcome: o})
			if err != nil {
				return fmt.Errorf("learn from stored canaries of %s: %w", sender, err)
			}
			for _, a := range as {
				if a.Header != "" {
					w.learnFrom(domain, sender, a.Header, seenAt(a))
				}
			}
		}
	}
	return nil
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
