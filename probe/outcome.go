package probe

import (
	"context"
	"net/mail"
	"strings"
	"time"

	"bufio"

	"github.com/emersion/go-message/textproto"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/verify"
)

// decideArrival decides an attempt whose arrival (SeenAt, Folder, Header)
// is recorded: folder, lateness, and what the receiver said about it.
func (e *Engine) decideArrival(ctx context.Context, a *attempt.Attempt, role string) {
	a.Outcome = attempt.OutcomeInbox
	if role == RoleSpam {
		a.Outcome = attempt.OutcomeSpam
	}
	if !a.SubmittedAt.IsZero() && a.LatencySLO > 0 && a.SeenAt.Sub(a.SubmittedAt) > a.LatencySLO {
		a.Late = true
	}
	mb, _ := e.cfg.Mailbox(a.Mailbox)
	if h, err := textproto.ReadHeader(bufio.NewReader(strings.NewReader(a.Header))); err == nil {
		a.ReceivedAt = topReceivedAt(h)
		a.Verdicts = verify.Summarize(h, mb.AuthservID)
	} else {
		e.log.Warn("unreadable canary header", "id", a.ID, "err", err)
	}
	e.finalize(ctx, a)
}

// topReceivedAt is the timestamp of the topmost Received header: when the
// provider's last hop took the message.
func topReceivedAt(h textproto.Header) time.Time {
	v := h.Get("Received")
	i := strings.LastIndexByte(v, ';')
	if i < 0 {
		return time.Time{}
	}
	t, err := mail.ParseDate(strings.TrimSpace(v[i+1:]))
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// finalize stores a decided attempt, tells observers and wakes waiters.
func (e *Engine) finalize(ctx context.Context, a *attempt.Attempt) {
	for _, enrich := range e.opts.Enrichers {
		enrich(ctx, a)
	}
	if err := e.opts.Store.Update(context.WithoutCancel(ctx), a); err != nil {
		e.log.Error("store attempt outcome", "id", a.ID, "err", err)
	}
	e.log.Info("attempt finished", "id", a.ID, "probe", a.Probe, "sender", a.Sender, "mailbox", a.Mailbox,
		"outcome", string(a.Outcome), "late", a.Late, "latency_ms", a.Latency().Milliseconds(),
		"spf", a.Verdicts.SPF, "dkim", a.Verdicts.DKIM, "dmarc", a.Verdicts.DMARC)
	// Observers first: whoever Waits for the attempt finds it published.
	for _, o := range e.opts.Observers {
		o(a)
	}
	e.mu.Lock()
	if ch := e.waiters[a.ID]; ch != nil {
		close(ch)
		delete(e.waiters, a.ID)
	}
	e.mu.Unlock()
}

// sweep decides attempts whose deadline passed: lost, or, for an attempt
// resumed after the prober stopped mid-submission, send_failed.
func (e *Engine) sweep(ctx context.Context) {
	t := time.NewTicker(e.opts.SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := e.opts.Now()
		var expired []*attempt.Attempt
		e.mu.Lock()
		for tok, la := range e.live {
			if la.sending || la.arrived || now.Before(la.a.Deadline) {
				continue
			}
			delete(e.live, tok)
			expired = append(expired, la.a)
		}
		e.mu.Unlock()
		for _, a := range expired {
			if a.SubmittedAt.IsZero() {
				a.Outcome = attempt.OutcomeSendFailed
				a.SMTP = attempt.SMTPResult{Stage: "interrupted", Reply: "otpprobe stopped during the submission and the canary never arrived"}
			} else {
				a.Outcome = attempt.OutcomeLost
			}
			e.finalize(ctx, a)
		}
	}
}

// Wait blocks until every attempt in ids has a final outcome or ctx ends.
func (e *Engine) Wait(ctx context.Context, ids ...string) error {
	for _, id := range ids {
		e.mu.Lock()
		ch := e.waiters[id]
		e.mu.Unlock()
		if ch == nil {
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
