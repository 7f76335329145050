package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/targets"
)

// Options configure an Engine.
type Options struct {
	Store  attempt.Store
	Logger *slog.Logger
	// Observers are told about every attempt that reaches a final outcome
	// (metrics, SLOs, alerts, failover). They run on whichever goroutine
	// decided the attempt (a send, a watcher, the sweeper, the bounce
	// watcher), possibly at the same time: they must be safe for concurrent
	// use and must not block.
	Observers []func(*attempt.Attempt)
	// Enrichers add evidence to a decided attempt before it is stored and
	// published: a DKIM re-check, a DNS diagnosis. They run in order and
	// may block briefly (they get the engine's context).
	Enrichers []func(ctx context.Context, a *attempt.Attempt)
	// RoundStarted is told about each round once its attempts are stored,
	// before any is sent (the round assembler learns which attempts to
	// wait for). It must not block.
	RoundStarted []func(*attempt.Round)
	// LoginFailed is told each time an IMAP watcher's login fails, with
	// the mailbox, the folder label (INBOX, junk, …) and the cause (auth
	// when the server refused the credentials, else dial, tls, login or
	// config); nil for none. It runs on the watcher's goroutine.
	LoginFailed func(mailbox, folder, cause string)
	// AuthChanged is told each time an IMAP server refuses a watcher's
	// credentials (the reason and the wait before the next try) and each
	// time it accepts them (nil, 0); nil for none. It runs on the
	// watcher's goroutine.
	AuthChanged func(mailbox, folder string, refused error, retryIn time.Duration)
	// LoginBackoffBase is the first wait after a refused login (default
	// 1 min); tests shorten it.
	LoginBackoffBase time.Duration
	// Now is the clock; tests may replace it.
	Now func() time.Time
	// SweepEvery is how often deadlines are checked (default 1s).
	SweepEvery time.Duration
}

// Engine runs probes: it creates attempts, sends canaries, holds the
// watchers and decides outcomes. One Engine per process.
type Engine struct {
	cfg      *targets.Config
	opts     Options
	log      *slog.Logger
	senders  map[string]Submitter
	watchers map[string][]*Watcher // by seed mailbox name
	bounces  []*Watcher            // one per bounce mailbox (targets.Config.BounceMailboxes)

	mu          sync.Mutex
	flights     inflight // attempts not published yet (inflight.go)
	storeHealth storeHealth
	started     bool

	running sync.WaitGroup // the goroutines Start started
	done    chan struct{}  // closed once they all returned
}

// New builds an engine for cfg. It does not start anything.
func New(cfg *targets.Config, opts Options) (*Engine, error) {
	if opts.Store == nil {
		return nil, errors.New("probe engine: no store")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SweepEvery == 0 {
		opts.SweepEvery = time.Second
	}
	e := &Engine{
		cfg: cfg, opts: opts, log: opts.Logger,
		senders:  map[string]Submitter{},
		watchers: map[string][]*Watcher{},
		flights:  newInflight(),
		done:     make(chan struct{}),
	}
	for _, s := range cfg.Senders {
		snd, err := NewSubmitter(s)
		if err != nil {
			return nil, fmt.Errorf("sender %s: %w", s.Name, err)
		}
		e.senders[s.Name] = snd
	}
	for _, name := range e.watchedMailboxes() {
		mb, _ := cfg.Mailbox(name)
		for _, role := range []string{RoleInbox, RoleSpam} {
			folder := "INBOX"
			if role == RoleSpam {
				folder = FolderJunk
			}
			w := NewWatcher(e.watchConfig(*mb, folder, ""), Canaries(e.isLive, func(ar Arrival) { e.onArrival(role, ar) }))
			e.watchers[name] = append(e.watchers[name], w)
		}
	}
	for _, name := range cfg.BounceMailboxes() {
		mb, _ := cfg.Mailbox(name)
		e.bounces = append(e.bounces, NewWatcher(e.watchConfig(*mb, "INBOX", "bounces"), Bounces(e.bounceToken, e.onBounce)))
	}
	return e, nil
}

// watchConfig is the watcher settings of one folder of mb; label names
// it in metrics and health ("" for the folder's own label).
func (e *Engine) watchConfig(mb targets.Mailbox, folder, label string) WatchConfig {
	if label == "" {
		label = folderLabel(folder)
	}
	wc := WatchConfig{Mailbox: mb, Folder: folder, Label: label, Creds: credentials(mb.Auth), Logger: e.log}
	if f := e.opts.LoginFailed; f != nil {
		wc.OnLoginFailure = func(cause string) { f(mb.Name, label, cause) }
	}
	if f := e.opts.AuthChanged; f != nil {
		wc.OnAuth = func(refused error, retryIn time.Duration) { f(mb.Name, label, refused, retryIn) }
	}
	wc.LoginBackoffBase = e.opts.LoginBackoffBase
	return wc
}

// RetryLogins makes the watchers of mailbox (every mailbox when "") that
// wait after a refused login try again now, e.g. once `otpprobe auth
// test` proved the credentials fixed. It returns "mailbox/label" of each.
func (e *Engine) RetryLogins(mailbox string) []string {
	var out []string
	for _, w := range e.allWatchers() {
		if (mailbox == "" || w.cfg.Mailbox.Name == mailbox) && w.RetryLogin() {
			out = append(out, w.cfg.Mailbox.Name+"/"+w.cfg.Label)
		}
	}
	return out
}

func (e *Engine) allWatchers() []*Watcher {
	var out []*Watcher
	for _, name := range e.watchedMailboxes() {
		out = append(out, e.watchers[name]...)
	}
	return append(out, e.bounces...)
}

// Watchers returns a snapshot of every watcher's state: the seed
// mailboxes' folders, then the bounce mailboxes.
func (e *Engine) Watchers() []WatchState {
	var out []WatchState
	for _, name := range e.watchedMailboxes() {
		for _, w := range e.watchers[name] {
			out = append(out, w.State())
		}
	}
	for _, w := range e.bounces {
		out = append(out, w.State())
	}
	return out
}

// Outcome folders.
const (
	RoleInbox = "inbox"
	RoleSpam  = "spam"
)

// watchedMailboxes are the mailboxes any probe sends to.
func (e *Engine) watchedMailboxes() []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range e.cfg.Probes {
		for _, m := range p.Mailboxes {
			if !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	return out
}

// Start resumes pending attempts from the store and starts the watchers and
// the deadline sweeper; they run until ctx is done.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	if e.started {
		e.mu.Unlock()
		return errors.New("probe engine: already started")
	}
	e.started = true
	e.mu.Unlock()

	pending, err := e.opts.Store.Pending(ctx, e.cfg.Agent) // ours only, where agents share the store
	if err != nil {
		return fmt.Errorf("resume pending attempts: %w", err)
	}
	var arrived []*flight
	e.mu.Lock()
	for _, a := range pending {
		f := newFlight(a, false)
		e.flights.add(f)
		if !a.SeenAt.IsZero() {
			// Seen (and stored) while its submission was still running, then
			// the prober stopped: the arrival decides it.
			e.flights.take(f)
			arrived = append(arrived, f)
		}
		// Otherwise it is still watched, whether it was submitted or
		// interrupted mid-send (the server may have accepted it).
	}
	e.mu.Unlock()
	for _, f := range arrived {
		e.decideArrival(ctx, f, roleOfFolder(f.a.Folder))
	}
	if len(pending) > 0 {
		e.log.Info("resumed pending attempts", "count", len(pending))
	}
	for _, ws := range e.watchers {
		for _, w := range ws {
			e.running.Go(func() {
				if err := w.Run(ctx); err != nil && ctx.Err() == nil {
					e.log.Error("watcher stopped", "err", err)
				}
			})
		}
	}
	for _, w := range e.bounces {
		e.running.Go(func() {
			if err := w.Run(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("bounce watcher stopped", "err", err)
			}
		})
	}
	e.running.Go(func() { e.sweep(ctx) })
	go func() {
		e.running.Wait()
		close(e.done)
	}()
	return nil
}

// Done is closed once the watchers, the bounce watcher and the sweeper that
// Start started have returned, after its ctx ended: from then on nothing of
// the engine writes to the store, so it may be closed. (Rounds are the
// caller's: Round returns when its sends are done.) It is never closed if
// Start was not called or failed.
func (e *Engine) Done() <-chan struct{} { return e.done }

// Round runs one round of probe p: an attempt per sender × mailbox, all
// with the round's ID, each stored pending before its canary is sent. It
// returns once every canary was submitted (or failed); outcomes follow as
// the watchers see mail. When an attempt cannot be created or stored, the
// round stops there: the attempts already stored are still sent (and
// decided), and the error is returned with the round.
func (e *Engine) Round(ctx context.Context, probeName string) (*attempt.Round, error) {
	p, ok := findProbe(e.cfg, probeName)
	if !ok {
		return nil, fmt.Errorf("unknown probe %q", probeName)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("round id: %w", err)
	}
	r := &attempt.Round{ID: id.String(), Probe: p.Name, StartedAt: e.opts.Now().UTC().Truncate(time.Millisecond)}
	r.Attempts, err = e.createAttempts(ctx, p, r.ID)
	for _, started := range e.opts.RoundStarted {
		started(r)
	}
	var wg sync.WaitGroup
	for _, a := range r.Attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.send(ctx, p, a)
		}()
	}
	wg.Wait()
	return r, err
}

// createAttempts stores a pending attempt of round per sender × mailbox
// of p and makes it live (sending); it stops at the first failure.
func (e *Engine) createAttempts(ctx context.Context, p targets.Probe, round string) ([]*attempt.Attempt, error) {
	var attempts []*attempt.Attempt
	for _, sname := range p.Senders {
		s, _ := e.cfg.Sender(sname)
		for _, mname := range p.Mailboxes {
			mb, _ := e.cfg.Mailbox(mname)
			a, err := NewAttempt(e.opts.Now(), p.Name, s.Name, s.From, mb.Name, mb.Provider, p.Deadline, p.LatencySLO)
			if err != nil {
				return attempts, err
			}
			a.RoundID, a.Agent = round, e.cfg.Agent
			err = e.opts.Store.Create(ctx, a)
			e.storeWrote(err)
			if err != nil {
				return attempts, fmt.Errorf("store attempt: %w", err)
			}
			e.mu.Lock()
			e.flights.add(newFlight(a, true))
			e.mu.Unlock()
			attempts = append(attempts, a)
		}
	}
	return attempts, nil
}

// send submits one canary and records the submission's result.
func (e *Engine) send(ctx context.Context, p targets.Probe, a *attempt.Attempt) {
	s, _ := e.cfg.Sender(a.Sender)
	mb, _ := e.cfg.Mailbox(a.Mailbox)
	subject, body, err := p.Render(a.Code, a.Token)
	var msg []byte
	if err == nil {
		msg, err = Compose(a, Canary{From: s.From, To: mb.Address, Subject: subject, Body: body}, e.opts.Now())
	}
	if err != nil {
		e.finishSend(ctx, a, nil, &SendError{Stage: "compose", Err: err})
		return
	}
	sctx, cancel := context.WithTimeout(ctx, sendTimeout(p))
	defer cancel()
	res, err := e.senders[a.Sender].Send(sctx, s.EnvelopeFrom, []string{mb.Address}, msg)
	e.finishSend(ctx, a, res, err)
	for _, w := range e.watchers[a.Mailbox] {
		w.Poke()
	}
}

// sendTimeout bounds one submission: a minute, or the probe's deadline if
// that is shorter.
func sendTimeout(p targets.Probe) time.Duration {
	if p.Deadline > 0 && p.Deadline < time.Minute {
		return p.Deadline
	}
	return time.Minute
}

func (e *Engine) finishSend(ctx context.Context, a *attempt.Attempt, res *SendResult, err error) {
	e.mu.Lock()
	f := e.flights.match(a.Token)
	if f == nil { // already decided (cannot normally happen)
		e.mu.Unlock()
		return
	}
	if err != nil && ctx.Err() != nil && !f.arrived {
		// The prober is stopping, not the server failing: the server may have
		// taken the canary, so the attempt stays pending (in the store, for
		// the next start) and watched like a resumed one: an arrival decides
		// it, or the sweeper at its deadline.
		f.endSend()
		e.mu.Unlock()
		e.log.Info("submission interrupted; attempt left pending", "id", a.ID)
		return
	}
	if err != nil && !f.arrived {
		f.endSend()
		e.flights.take(f)
		a.Outcome = attempt.OutcomeSendFailed
		var se *SendError
		if errors.As(err, &se) {
			a.SMTP = attempt.SMTPResult{Stage: se.Stage, Code: se.Code, Enhanced: se.Enhanced, Reply: se.Error()}
			a.Transcript = se.Transcript
		} else {
			a.SMTP = attempt.SMTPResult{Stage: "send", Reply: err.Error()}
		}
		e.mu.Unlock()
		e.finalize(ctx, f)
		return
	}
	if err == nil {
		a.SubmittedAt = res.SubmittedAt.UTC().Truncate(time.Millisecond)
		a.SMTP = attempt.SMTPResult{Code: 250, Reply: res.Reply}
		a.Transcript = res.Transcript
	} // else: the reply was lost but the canary arrived; the arrival decides
	if !f.arrived {
		// Store the submission while still "sending", so that an arrival in
		// the meantime is left for this function to decide and the pending
		// row can never overwrite a final one.
		snap, n := f.snapshot()
		e.mu.Unlock()
		// A submission the server accepted is stored even if the prober is
		// stopping: a restart must not take it for an interrupted one.
		if err := e.storePending(context.WithoutCancel(ctx), f, snap, n); err != nil {
			e.log.Error("store submitted attempt", "id", a.ID, "err", err)
		}
		e.mu.Lock()
	}
	f.endSend()
	if f.arrived {
		e.flights.take(f)
		e.mu.Unlock()
		e.decideArrival(ctx, f, f.role)
		return
	}
	e.mu.Unlock()
}

// isLive tells the watchers whether a token belongs to an attempt in flight;
// other mail is never touched.
func (e *Engine) isLive(token string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.flights.match(token) != nil
}

// onArrival runs on a watcher's goroutine. The watcher removes the canary
// from the mailbox once this returns, so the arrival must be stored by then:
// a prober killed right after the cleanup still knows the canary arrived.
func (e *Engine) onArrival(role string, ar Arrival) {
	ctx := context.Background()
	e.mu.Lock()
	f := e.flights.match(ar.Token)
	if f == nil || f.arrived { // unknown, decided, or a duplicate copy
		e.mu.Unlock()
		return
	}
	a := f.a
	f.arrived, f.role = true, role
	a.SeenAt = ar.SeenAt.UTC().Truncate(time.Millisecond)
	a.Folder = ar.Folder
	a.InternalDate = ar.InternalDate.UTC()
	a.Header = string(ar.Header)
	a.Body = string(ar.Body)
	if f.sending { // the final 250 is still on its way; finishSend decides
		snap, n := f.snapshot()
		e.mu.Unlock()
		if err := e.storePending(ctx, f, snap, n); err != nil {
			e.log.Error("store arrival", "id", a.ID, "err", err)
		}
		return
	}
	e.flights.take(f)
	e.mu.Unlock()
	e.decideArrival(ctx, f, role)
}

// roleOfFolder tells, for a stored arrival, which watcher saw it: only
// INBOX and the junk folder are watched.
func roleOfFolder(folder string) string {
	if strings.EqualFold(folder, "INBOX") {
		return RoleInbox
	}
	return RoleSpam
}
