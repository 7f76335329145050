package probe

import (
	"context"
	"encoding/json"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"bufio"

	"github.com/emersion/go-message/textproto"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/verify"
)

// decideArrival decides an attempt whose arrival (SeenAt, Folder, Header)
// is recorded: folder, lateness, and what the receiver said about it.
func (e *Engine) decideArrival(ctx context.Context, f *flight, role string) {
	a := f.a
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
	e.finalize(ctx, f)
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
// The caller took f out of matching (inflight.take).
func (e *Engine) finalize(ctx context.Context, f *flight) {
	a := f.a
	f.rows.close() // a pending write of an arrival may still be going
	for _, enrich := range e.opts.Enrichers {
		enrich(ctx, a)
	}
	err := e.opts.Store.Update(context.WithoutCancel(ctx), a)
	e.storeWrote(err)
	if err != nil {
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
	e.flights.publish(f)
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
		var expired []*flight
		e.mu.Lock()
		for _, f := range e.flights.byToken {
			if f.sending || f.arrived || now.Before(f.a.Deadline) {
				continue
			}
			e.flights.take(f)
			expired = append(expired, f)
		}
		e.mu.Unlock()
		for _, f := range expired {
			if f.a.SubmittedAt.IsZero() {
				f.a.Outcome = attempt.OutcomeSendFailed
				f.a.SMTP = attempt.SMTPResult{Stage: attempt.StageInterrupted, Reply: "otpprobe stopped during the submission and the canary never arrived"}
			} else {
				f.a.Outcome = attempt.OutcomeLost
				e.noteWatcherDown(f.a)
			}
			e.finalize(ctx, f)
		}
	}
}

// Wait blocks until every attempt in ids is published (decided, stored and
// told to the observers) or ctx ends. Unknown IDs are taken as published.
func (e *Engine) Wait(ctx context.Context, ids ...string) error {
	for _, id := range ids {
		e.mu.Lock()
		f := e.flights.byID[id]
		e.mu.Unlock()
		if f == nil {
			continue
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// bounceToken finds the live attempt a DSN is about: by the returned
// X-Otpprobe-Id, the token in the returned Subject, then the Message-ID.
func (e *Engine) bounceToken(d *verify.DSN) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if tok := strings.TrimSpace(d.OriginalProbeID); e.flights.match(tok) != nil {
		return tok
	}
	for _, c := range bracketedWords(d.OriginalSubject) {
		if e.flights.match(c) != nil {
			return c
		}
	}
	if id := strings.Trim(strings.TrimSpace(d.OriginalMessageID), "<>"); id != "" {
		for tok, f := range e.flights.byToken {
			if strings.EqualFold(f.a.MessageID, id) {
				return tok
			}
		}
	}
	return ""
}

// onBounce decides an attempt a failure DSN reported. The DSN's status,
// diagnostic and remote MTA replace the submission's reply in SMTP (the
// reply moves to Detail): the bounce is what the user needs to see.
func (e *Engine) onBounce(bn Bounce) {
	e.mu.Lock()
	for {
		f := e.flights.match(bn.Token)
		if f == nil || f.arrived { // decided, or the canary was delivered after all
			e.mu.Unlock()
			return
		}
		if !f.sending {
			e.flights.take(f)
			e.mu.Unlock()
			e.decideBounce(f, bn)
			return
		}
		// The DSN overtook the submission's end (a relay that bounces before
		// it answers QUIT, or while the submission is being stored). Wait for
		// it (a send is bounded by sendTimeout): deciding now would let the
		// pending row land after the bounced one, and returning undecided
		// would let the watcher remove the DSN before the bounce is stored.
		sent := f.sent
		e.mu.Unlock()
		<-sent
		e.mu.Lock()
	}
}

// decideBounce decides f, taken out of matching, as bounced by bn.
func (e *Engine) decideBounce(f *flight, bn Bounce) {
	a := f.a
	r := failedRecipient(bn.DSN)
	detail := bounceDetail{DSN: bn.DSN, SeenAt: bn.SeenAt, SubmissionReply: a.SMTP.Reply, Message: keptDSN(bn.Message)}
	if b, err := json.Marshal(map[string]any{"bounce": detail}); err == nil {
		a.Detail = string(b)
	}
	a.Outcome = attempt.OutcomeBounced
	a.SMTP = attempt.SMTPResult{Stage: attempt.StageBounce, Code: diagnosticCode(r.DiagnosticCode), Enhanced: r.Status, Reply: bounceReply(r)}
	e.finalize(context.Background(), f)
}

type bounceDetail struct {
	DSN             *verify.DSN `json:"dsn"`
	SeenAt          time.Time   `json:"seen_at"`
	SubmissionReply string      `json:"submission_reply,omitempty"`
	// Message is the DSN itself (its first maxKeptDSN bytes), the evidence a
	// postmortem quotes: the evidence bundle writes it as dsn.eml.
	Message string `json:"message,omitempty"`
}

// maxKeptDSN bounds the DSN kept per attempt: a DSN is a few KB, but one
// that returns the whole original message must not bloat the store.
const maxKeptDSN = 64 << 10

func keptDSN(msg []byte) string {
	if len(msg) > maxKeptDSN {
		msg = msg[:maxKeptDSN]
	}
	return strings.ToValidUTF8(string(msg), "\ufffd")
}

// failedRecipient is the first recipient the DSN reports as failed.
func failedRecipient(d *verify.DSN) verify.DSNRecipient {
	for _, r := range d.Recipients {
		if strings.EqualFold(r.Action, "failed") || strings.HasPrefix(r.Status, "5.") {
			return r
		}
	}
	if len(d.Recipients) > 0 {
		return d.Recipients[0]
	}
	return verify.DSNRecipient{}
}

// diagnosticCode is the SMTP reply code of "smtp; 550 5.7.26 …", or 0.
func diagnosticCode(diag string) int {
	_, v, ok := strings.Cut(diag, ";")
	if !ok {
		v = diag
	}
	v = strings.TrimSpace(v)
	if len(v) < 3 || (len(v) > 3 && v[3] != ' ' && v[3] != '-') {
		return 0
	}
	n, err := strconv.Atoi(v[:3])
	if err != nil || n < 200 || n > 599 {
		return 0
	}
	return n
}

func bounceReply(r verify.DSNRecipient) string {
	s := strings.TrimSpace(r.DiagnosticCode)
	if s == "" {
		s = "delivery failed, status " + r.Status
	}
	if r.RemoteMTA != "" {
		s += " (remote MTA " + r.RemoteMTA + ")"
	}
	return s
}

// noteWatcherDown records in a lost attempt's Detail that a watcher of its
// mailbox has no connection: the canary may have arrived unseen, and the
// diagnosis must say so rather than blame the sender or the provider.
func (e *Engine) noteWatcherDown(a *attempt.Attempt) {
	for _, w := range e.watchers[a.Mailbox] {
		st := w.State()
		if st.Connected {
			continue
		}
		b, err := json.Marshal(map[string]any{"watcher_down": map[string]any{
			"folder": st.Label, "last_error": st.LastError, "since": st.Since.UTC()}})
		if err == nil && a.Detail == "" {
			a.Detail = string(b)
		}
		return
	}
}
