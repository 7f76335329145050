package rounds

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/targets"
)

// Options configure an Assembler.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time
	// Grace is how long past its latest deadline a round with undecided
	// attempts is waited for before it is handed on as Partial (default 10s).
	Grace time.Duration
}

// Assembler collects the rounds the engine starts (Begin) and the attempts
// it finishes (Observe), and hands each sender's rounds, in the order they
// started, to its subscribers once all their attempts are decided.
// Subscribers run on the Assembler's goroutine (Run), one round at a time,
// so they may write to the store without holding up the engine.
type Assembler struct {
	subs []func(context.Context, Round)
	now  func() time.Time
	log  *slog.Logger

	mu    sync.Mutex
	book  *book // only under mu
	ready []Round
	wake  chan struct{}
}

// New returns an Assembler for cfg's probes that hands rounds to subs.
func New(cfg *targets.Config, opts Options, subs ...func(context.Context, Round)) *Assembler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Grace == 0 {
		opts.Grace = 10 * time.Second
	}
	return &Assembler{subs: subs, now: opts.Now, log: opts.Logger,
		book: newBook(cfg, opts.Grace, opts.Logger), wake: make(chan struct{}, 1)}
}

// Begin registers a round the engine started (probe.Options.RoundStarted):
// from then on the Assembler knows which attempts to wait for. It never
// blocks.
func (s *Assembler) Begin(r *attempt.Round) {
	s.mu.Lock()
	s.book.begin(r)
	s.mu.Unlock()
}

// Observe takes a finished attempt (an engine observer). It never blocks.
func (s *Assembler) Observe(a *attempt.Attempt) {
	if a == nil || !a.Outcome.Final() {
		return
	}
	c := *a
	s.mu.Lock()
	s.book.add(&c)
	s.ready = append(s.ready, s.book.due(s.now())...)
	n := len(s.ready)
	s.mu.Unlock()
	if n > 0 {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// Run hands rounds on until ctx is done. Rounds that complete are handed
// on at once; overdue ones within a second of their deadline plus grace.
func (s *Assembler) Run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-tick.C:
		}
		s.mu.Lock()
		rs := append(s.ready, s.book.due(s.now())...)
		s.ready = nil
		s.mu.Unlock()
		for _, r := range rs {
			for _, sub := range s.subs {
				sub(ctx, r)
			}
		}
	}
}

// book is the assembly state: per probe and sender, the rounds not yet
// handed on, oldest first. Round IDs are UUIDv7, so their order is the
// order the rounds started in.
type book struct {
	probes map[string]probeInfo
	grace  time.Duration
	log    *slog.Logger
	open   map[key][]*building
	last   map[key]string // ID of the newest round handed on
}

type key struct{ probe, sender string }

type probeInfo struct {
	mailboxes int      // attempts per sender and round
	providers []string // distinct providers of those mailboxes, sorted
}

// building is one sender's part of a round. want lists the attempts the
// round created; a round resumed after a restart (never begun in this
// process) knows only how many to expect.
type building struct {
	round   Round
	want    map[string]bool // attempt IDs; nil for a resumed round
	expect  int
	got     map[string]bool
	overdue time.Time
}

func (b *building) complete() bool {
	if b.want != nil {
		for id := range b.want {
			if !b.got[id] {
				return false
			}
		}
		return true
	}
	return len(b.got) >= b.expect
}

func newBook(cfg *targets.Config, grace time.Duration, log *slog.Logger) *book {
	bk := &book{probes: map[string]probeInfo{}, grace: grace, log: log,
		open: map[key][]*building{}, last: map[key]string{}}
	for _, p := range cfg.Probes {
		info := probeInfo{mailboxes: len(p.Mailboxes)}
		for _, name := range p.Mailboxes {
			if m, ok := cfg.Mailbox(name); ok {
				prov := (&attempt.Attempt{Provider: m.Provider, Mailbox: m.Name}).ProviderKey()
				if !slices.Contains(info.providers, prov) {
					info.providers = append(info.providers, prov)
				}
			}
		}
		slices.Sort(info.providers)
		bk.probes[p.Name] = info
	}
	return bk
}

// begin registers each sender's part of r.
func (bk *book) begin(r *attempt.Round) {
	for _, a := range r.Attempts {
		b := bk.building(a, r.StartedAt)
		if b == nil {
			continue
		}
		if b.want == nil {
			b.want = map[string]bool{}
		}
		b.want[a.ID] = true
		b.overdue = later(b.overdue, a.Deadline, bk.grace)
	}
}

// add records a decided attempt in its round.
func (bk *book) add(a *attempt.Attempt) {
	if a.RoundID == "" {
		// Stored before attempts carried their round: it counts in metrics
		// and SLOs, but there is no round to put it in.
		bk.log.Debug("attempt without a round", "id", a.ID)
		return
	}
	b := bk.building(a, a.CreatedAt)
	if b == nil {
		return
	}
	if b.want != nil && !b.want[a.ID] {
		bk.log.Warn("attempt not created by its round", "id", a.ID, "round", a.RoundID)
		return
	}
	if b.got[a.ID] {
		return
	}
	b.got[a.ID] = true
	b.round.Attempts = append(b.round.Attempts, a)
	b.overdue = later(b.overdue, a.Deadline, bk.grace)
}

// building finds or opens the part of a's round for a's sender; nil when
// that round was handed on already or its probe is not configured.
func (bk *book) building(a *attempt.Attempt, start time.Time) *building {
	info, ok := bk.probes[a.Probe]
	if !ok {
		return nil // a probe no longer in the config (resumed after a change)
	}
	k := key{a.Probe, a.Sender}
	if last := bk.last[k]; last != "" && a.RoundID <= last {
		bk.log.Debug("attempt of a round already handed on", "id", a.ID, "round", a.RoundID)
		return nil
	}
	list := bk.open[k]
	i, found := slices.BinarySearchFunc(list, a.RoundID, func(b *building, id string) int {
		return compare(b.round.ID, id)
	})
	if found {
		b := list[i]
		if start.Before(b.round.Start) {
			b.round.Start = start
		}
		return b
	}
	b := &building{
		round:  Round{ID: a.RoundID, Probe: a.Probe, Sender: a.Sender, Start: start, Providers: info.providers},
		expect: info.mailboxes,
		got:    map[string]bool{},
	}
	bk.open[k] = slices.Insert(list, i, b)
	return b
}

// due takes out, per sender, the oldest rounds that are complete or
// overdue at now; a complete round waits for older ones still undecided.
func (bk *book) due(now time.Time) []Round {
	var out []Round
	for k, list := range bk.open {
		for len(list) > 0 {
			b := list[0]
			complete := b.complete()
			if !complete && (b.overdue.IsZero() || now.Before(b.overdue)) {
				break
			}
			list = list[1:]
			b.round.Partial = !complete
			slices.SortFunc(b.round.Attempts, func(x, y *attempt.Attempt) int {
				if c := x.CreatedAt.Compare(y.CreatedAt); c != 0 {
					return c
				}
				return compare(x.ID, y.ID)
			})
			bk.last[k] = b.round.ID
			out = append(out, b.round)
		}
		if len(list) == 0 {
			delete(bk.open, k)
		} else {
			bk.open[k] = list
		}
	}
	// Deterministic order across senders: by round, then sender.
	slices.SortFunc(out, func(x, y Round) int {
		if c := compare(x.ID, y.ID); c != 0 {
			return c
		}
		return compare(x.Sender, y.Sender)
	})
	return out
}

// later is the later of t and deadline+grace; an unknown deadline
// changes nothing.
func later(t, deadline time.Time, grace time.Duration) time.Time {
	if deadline.IsZero() {
		return t
	}
	if d := deadline.Add(grace); d.After(t) {
		return d
	}
	return t
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
