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
	// Grace is how long past its deadline a round with missing attempts is
	// waited for before it is handed on as Partial (default 10s).
	Grace time.Duration
}

// Assembler collects finished attempts (Observe is an engine observer)
// and hands each sender's rounds, in the order they started, to its
// subscribers. Subscribers run on the Assembler's goroutine (Run), one
// round at a time, so they may write to the store without holding up the
// engine.
type Assembler struct {
	opts   Options
	probes map[string]probeInfo
	subs   []func(context.Context, Round)

	mu    sync.Mutex
	queue []*attempt.Attempt
	wake  chan struct{}

	open map[key][]*building // by start, oldest first; only Run touches it
	last map[key]time.Time   // start of the newest round handed on
}

type key struct{ probe, sender string }

type probeInfo struct {
	expected  int           // attempts per sender and round: the probe's mailboxes
	providers []string      // distinct providers of those mailboxes
	window    time.Duration // attempts of one round are created within it
	deadline  time.Duration
}

type building struct {
	round     Round
	mailboxes map[string]bool
	expected  int
	overdue   time.Time
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
	s := &Assembler{
		opts: opts, probes: map[string]probeInfo{}, subs: subs,
		wake: make(chan struct{}, 1),
		open: map[key][]*building{}, last: map[key]time.Time{},
	}
	for _, p := range cfg.Probes {
		info := probeInfo{expected: len(p.Mailboxes), window: Window(p), deadline: p.Deadline}
		for _, name := range p.Mailboxes {
			m, ok := cfg.Mailbox(name)
			if !ok {
				continue
			}
			prov := Provider(&attempt.Attempt{Provider: m.Provider, Mailbox: m.Name})
			if !slices.Contains(info.providers, prov) {
				info.providers = append(info.providers, prov)
			}
		}
		slices.Sort(info.providers)
		s.probes[p.Name] = info
	}
	return s
}

// Window is how close in creation time the attempts of one round of p are
// taken to be: half the probe's interval, between 250ms and 5 minutes.
// A round creates all its attempts before sending any, so they are
// milliseconds apart; the next round is an interval later.
func Window(p targets.Probe) time.Duration {
	sched, err := p.CronSchedule()
	if err != nil {
		return time.Second
	}
	t := sched.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	interval := time.Duration(1<<63 - 1)
	for range 4 {
		n := sched.Next(t)
		interval = min(interval, n.Sub(t))
		t = n
	}
	return min(max(interval/2, 250*time.Millisecond), 5*time.Minute)
}

// Observe queues a finished attempt. It never blocks: it is called on the
// engine's goroutine.
func (s *Assembler) Observe(a *attempt.Attempt) {
	if a == nil || !a.Outcome.Final() {
		return
	}
	c := *a
	s.mu.Lock()
	s.queue = append(s.queue, &c)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run assembles rounds and hands them on until ctx is done.
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
		q := s.queue
		s.queue = nil
		s.mu.Unlock()
		for _, a := range q {
			s.add(a)
		}
		s.flush(ctx)
	}
}

func (s *Assembler) add(a *attempt.Attempt) {
	info, ok := s.probes[a.Probe]
	if !ok {
		return // a probe no longer in the config (resumed after a change)
	}
	k := key{a.Probe, a.Sender}
	if last, ok := s.last[k]; ok && !a.CreatedAt.After(last.Add(info.window)) {
		s.opts.Logger.Debug("attempt of a round already decided", "id", a.ID, "probe", a.Probe, "sender", a.Sender)
		return
	}
	list := s.open[k]
	for _, b := range list {
		if !b.mailboxes[a.Mailbox] && absDuration(a.CreatedAt.Sub(b.round.Start)) <= info.window {
			b.mailboxes[a.Mailbox] = true
			b.round.Attempts = append(b.round.Attempts, a)
			if a.CreatedAt.Before(b.round.Start) {
				b.round.Start = a.CreatedAt
			}
			return
		}
	}
	b := &building{
		round:     Round{Probe: a.Probe, Sender: a.Sender, Start: a.CreatedAt, Attempts: []*attempt.Attempt{a}, Providers: info.providers},
		mailboxes: map[string]bool{a.Mailbox: true},
		expected:  info.expected,
		overdue:   a.CreatedAt.Add(info.deadline + s.opts.Grace),
	}
	i, _ := slices.BinarySearchFunc(list, b, func(x, y *building) int { return x.round.Start.Compare(y.round.Start) })
	s.open[k] = slices.Insert(list, i, b)
}

// flush hands on, per sender, the oldest rounds that are complete or
// overdue; a complete round waits for older ones still missing attempts.
func (s *Assembler) flush(ctx context.Context) {
	now := s.opts.Now()
	keys := make([]key, 0, len(s.open))
	for k := range s.open {
		keys = append(keys, k)
	}
	// Deterministic order across senders: oldest first round first.
	slices.SortFunc(keys, func(a, b key) int { return s.open[a][0].round.Start.Compare(s.open[b][0].round.Start) })
	for _, k := range keys {
		list := s.open[k]
		for len(list) > 0 {
			b := list[0]
			complete := len(b.round.Attempts) >= b.expected
			if !complete && now.Before(b.overdue) {
				break
			}
			list = list[1:]
			b.round.Partial = !complete
			slices.SortFunc(b.round.Attempts, func(x, y *attempt.Attempt) int { return x.CreatedAt.Compare(y.CreatedAt) })
			s.last[k] = b.round.Start
			for _, sub := range s.subs {
				sub(ctx, b.round)
			}
		}
		if len(list) == 0 {
			delete(s.open, k)
		} else {
			s.open[k] = list
		}
	}
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
