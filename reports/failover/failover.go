package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/otpprobe/otpprobe/reports/rounds"
	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
)

// Store keeps route state, transitions and pins (reports/store.SQLite).
type Store interface {
	Route(ctx context.Context, route string) (store.RouteState, bool, error)
	SaveRoute(ctx context.Context, st *store.RouteState, tr *store.RouteTransition, out []store.OutboxEntry) error
	Pins(ctx context.Context) (map[string]store.RoutePin, error)
	SetPin(ctx context.Context, p store.RoutePin) error
	DeletePin(ctx context.Context, route string) error
}

// Options configure a Failover.
type Options struct {
	Store  Store
	Logger *slog.Logger
	Agent  string // this instance's name, in transition notifications
	Now    func() time.Time
	// Outbox returns the notifications to queue with a transition, in the
	// same transaction (the route's webhooks); nil queues none.
	Outbox func(r targets.Route, t Transition) []store.OutboxEntry
	// Changed are told about every stored transition, in order, on the
	// goroutine that caused it (metrics, alerts).
	Changed []func(ctx context.Context, t Transition)
	// FastBurn reports whether an SLO of the route burns its budget at the
	// fast rate; consulted for routes with fail_over_on_fast_burn.
	FastBurn func(route string) (burning bool, why string)
	// Poll is how often pins set by another process (otpprobe route pin)
	// are read and hold times re-checked (default 2s; with Shared, at
	// most half the shortest probe interval of a route, so that another
	// agent takes over a dead leader's decisions within an interval).
	Poll time.Duration
	// Shared, when other agents share the store (PostgreSQL), makes one
	// elected agent decide each route from every agent's rounds
	// (shared.go); nil: this agent decides alone from its own rounds.
	Shared *Shared
	// Loaded is told about a decision another agent took, read back from
	// the shared store (metrics); it runs with the Failover's lock held.
	Loaded func(Decision)
	// Leading is told when this agent starts or stops taking a route's
	// decisions (Shared only; alone it always does). It runs with the
	// Failover's lock held.
	Leading func(route string, leading bool)
}

// Operator is who pins or unpins a route by hand, recorded with the pin
// and the transition it causes.
type Operator struct {
	Name   string // the API token's name, "anonymous" without tokens, cli:USER for otpprobe route
	Source string // the client's address
	Reason string
}

// ErrUnknownRoute and ErrUnknownSender are returned by Pin and Unpin.
var (
	ErrUnknownRoute  = errors.New("unknown route")
	ErrUnknownSender = errors.New("sender is not on this route")
)

// Failover holds every route's state machine.
type Failover struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	routes map[string]*route
	order  []string

	snapshot atomic.Pointer[map[string]Decision] // read without the lock by the API
	execs    map[string]*execHook
}

type route struct {
	cfg     targets.Route
	st      store.RouteState
	pin     *store.RoutePin
	backups map[string]health // each backup's last round
	lastBad verdict           // the primary's last unhealthy round (or interval)
	badIDs  []string          // unhealthy attempt IDs of the current bad streak
	// activeBad counts consecutive unhealthy rounds of the active backup.
	activeBad int
	// ignored is the last stored pin ignored for naming a sender not on
	// the route, so that it is logged once rather than every poll.
	ignored store.RoutePin
	// unpinned is who removed the pin, until the transition it causes is
	// stored.
	unpinned *Operator
	// shared is the state of a route decided together with other agents
	// (nil when this agent decides alone): shared.go.
	shared *sharedRoute
}

type health struct {
	healthy   bool
	at        time.Time
	diagnosis string
}

// maxEvidence bounds the attempt IDs a decision carries.
const maxEvidence = 30

// New loads every route's state (a new route starts on its primary) and
// pins from st.
func New(ctx context.Context, cfg *targets.Config, opts Options) (*Failover, error) {
	if opts.Store == nil {
		return nil, errors.New("failover: no store")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Poll == 0 {
		opts.Poll = 2 * time.Second
	}
	f := &Failover{opts: opts, log: opts.Logger, routes: map[string]*route{}, execs: map[string]*execHook{}}
	pins, err := opts.Store.Pins(ctx)
	if err != nil {
		return nil, fmt.Errorf("failover: %w", err)
	}
	for _, rc := range cfg.Routes {
		st, ok, err := opts.Store.Route(ctx, rc.Name)
		if err != nil {
			return nil, fmt.Errorf("failover: %w", err)
		}
		rt := &route{cfg: rc, backups: map[string]health{}}
		if !ok || !slices.Contains(rc.Senders(), st.ActiveSender) {
			st = store.RouteState{Route: rc.Name, ActiveSender: rc.Primary, State: StatePrimary,
				Since: opts.Now().UTC(), Reason: "started on the primary sender " + rc.Primary}
			if err := opts.Store.SaveRoute(ctx, &st, nil, nil); err != nil {
				return nil, fmt.Errorf("failover: %w", err)
			}
		}
		rt.st = st
		if opts.Shared != nil {
			rt.shared = newSharedRoute(cfg, rc, opts.Now())
			f.opts.Poll = min(f.opts.Poll, max(rt.shared.interval/2, 100*time.Millisecond))
		}
		if p, ok := pins[rc.Name]; ok && slices.Contains(rc.Senders(), p.Sender) {
			rt.pin = &p
		}
		f.routes[rc.Name] = rt
		f.order = append(f.order, rc.Name)
		if rc.Exec != nil {
			f.execs[rc.Name] = newExecHook(rc.Name, *rc.Exec, opts.Logger)
		}
	}
	f.publish()
	return f, nil
}

// Decision returns a route's current decision; it never blocks on the store.
func (f *Failover) Decision(name string) (Decision, bool) {
	d, ok := (*f.snapshot.Load())[name]
	return d, ok
}

// Decisions returns every route's decision in config order.
func (f *Failover) Decisions() []Decision {
	m := *f.snapshot.Load()
	out := make([]Decision, 0, len(f.order))
	for _, name := range f.order {
		out = append(out, m[name])
	}
	return out
}

func (f *Failover) publish() {
	m := make(map[string]Decision, len(f.routes))
	for name, rt := range f.routes {
		m[name] = decision(rt.st, rt.cfg.Primary, rt.pin != nil)
	}
	f.snapshot.Store(&m)
}

// ObserveRound feeds one sender's probe round to the routes it concerns
// (a rounds.Assembler subscriber).
func (f *Failover) ObserveRound(ctx context.Context, r rounds.Round) {
	if f.opts.Shared != nil {
		f.observeShared(ctx, r)
		return
	}
	var done []Transition
	f.mu.Lock()
	for _, name := range f.order {
		rt := f.routes[name]
		if !slices.Contains(rt.cfg.Senders(), r.Sender) || (rt.cfg.Probe != "" && rt.cfg.Probe != r.Probe) {
			continue
		}
		rt.observe(r)
		done = append(done, f.step(ctx, rt)...)
		// The streaks are saved even without a transition, so that a
		// restart keeps counting.
		f.save(ctx, rt, nil)
	}
	f.publish()
	f.mu.Unlock()
	f.changed(ctx, done)
}

func (rt *route) observe(r rounds.Round) {
	if v, ok := roundVerdict(rt.cfg, r); ok {
		rt.count(v)
	}
}

// verdict is what counts of one round of a sender (or, when agents share
// the store, of one interval of every agent's rounds of it).
type verdict struct {
	sender    string
	bad       bool
	start     time.Time
	unhealthy []string // providers
	providers int      // providers reached
	diagnosis string
	evidence  []string
	// agents says who saw it, when agents share the store: "2 of 2
	// agents (eu, us), quorum 2"; "" for one agent's own round.
	agents string
}

// roundVerdict is r's verdict for route c; ok is false when attempts are
// missing (a restart mid-round) and too few are decided to tell.
func roundVerdict(c targets.Route, r rounds.Round) (v verdict, ok bool) {
	unhealthy := r.Unhealthy()
	bad := len(unhealthy) >= c.UnhealthyProviders
	if r.Partial && !bad && len(unhealthy)+missing(r) >= c.UnhealthyProviders {
		return verdict{}, false
	}
	return verdict{sender: r.Sender, bad: bad, start: r.Start, unhealthy: unhealthy, providers: len(r.Providers),
		diagnosis: r.Diagnosis(), evidence: r.Evidence()}, true
}

// count feeds one verdict to the route's streaks.
func (rt *route) count(v verdict) {
	bad := v.bad
	if v.sender == rt.cfg.Primary {
		if bad {
			rt.st.BadRounds++
			rt.st.GoodRounds = 0
			rt.lastBad = v
			rt.badIDs = append(rt.badIDs, v.evidence...)
			if n := len(rt.badIDs); n > maxEvidence {
				rt.badIDs = rt.badIDs[n-maxEvidence:]
			}
		} else {
			rt.st.GoodRounds++
			rt.st.BadRounds = 0
			rt.badIDs = nil
		}
		return
	}
	rt.backups[v.sender] = health{healthy: !bad, at: v.start, diagnosis: v.diagnosis}
	if v.sender == rt.st.ActiveSender {
		if bad {
			rt.activeBad++
		} else {
			rt.activeBad = 0
		}
	}
}

// step moves the state machine as far as the known facts allow and
// stores each transition. When agents share the store only the leader
// steps, and a transition another agent got to first is dropped (not
// returned).
func (f *Failover) step(ctx context.Context, rt *route) []Transition {
	if rt.shared != nil && !rt.shared.leading {
		return nil
	}
	var out []Transition
	for range 5 { // each pass makes at most one transition
		to, sender, reason, diag, evidence, ok := f.next(rt)
		if !ok {
			break
		}
		t, err := f.transition(ctx, rt, to, sender, reason, diag, evidence)
		if err != nil {
			break
		}
		out = append(out, t)
	}
	return out
}

// next is the state machine: the transition due now, if any.
func (f *Failover) next(rt *route) (to, sender, reason, diag string, evidence []string, ok bool) {
	c, st := rt.cfg, &rt.st
	if rt.pin != nil {
		if st.State == StatePinned && st.ActiveSender == rt.pin.Sender {
			return
		}
		who := "an operator"
		if rt.pin.Actor != "" {
			who = rt.pin.Actor
		}
		why := "pinned to " + rt.pin.Sender + " by " + who
		if rt.pin.Reason != "" {
			why += ": " + rt.pin.Reason
		}
		return StatePinned, rt.pin.Sender, why, "", nil, true
	}
	now := f.opts.Now()
	switch st.State {
	case StatePinned:
		why := "unpinned"
		if rt.unpinned != nil && rt.unpinned.Reason != "" {
			why += " (" + rt.unpinned.Reason + ")"
		}
		if st.ActiveSender == c.Primary {
			return StatePrimary, c.Primary, why + "; staying on the primary " + c.Primary, "", nil, true
		}
		return StateBackup, st.ActiveSender, why + "; staying on " + st.ActiveSender + " until the primary recovers", "", nil, true
	case StatePrimary:
		if st.BadRounds >= c.UnhealthyRounds {
			return StateFailingOver, c.Primary, rt.badReason(), rt.lastBad.diagnosis, rt.badIDs, true
		}
		if burning, why := f.fastBurn(c); burning {
			return StateFailingOver, c.Primary, "fast SLO burn: " + why, rt.lastBad.diagnosis, rt.badIDs, true
		}
	case StateFailingOver:
		if st.BadRounds == 0 && st.GoodRounds > 0 {
			if burning, _ := f.fastBurn(c); !burning {
				return StatePrimary, c.Primary, fmt.Sprintf("%s healthy again before failing over", c.Primary), "", nil, true
			}
		}
		if b := rt.healthyBackup(""); b != "" {
			return StateBackup, b, fmt.Sprintf("failed over from %s to %s (healthy in its last round): %s", c.Primary, b, st.Reason),
				st.Diagnosis, st.Evidence, true
		}
	case StateBackup:
		if st.GoodRounds >= c.HealthyRounds {
			return StateRecovering, st.ActiveSender, fmt.Sprintf("%s healthy for %d consecutive rounds; holding %s until %v after the failover",
				c.Primary, st.GoodRounds, st.ActiveSender, c.MinHold), "", nil, true
		}
		if rt.activeBad >= c.UnhealthyRounds {
			if b := rt.healthyBackup(st.ActiveSender); b != "" {
				rt.activeBad = 0
				return StateBackup, b, fmt.Sprintf("backup %s unhealthy for %d consecutive rounds; switched to %s",
					st.ActiveSender, c.UnhealthyRounds, b), rt.backups[st.ActiveSender].diagnosis, nil, true
			}
		}
	case StateRecovering:
		if st.BadRounds > 0 {
			return StateBackup, st.ActiveSender, fmt.Sprintf("%s unhealthy again while recovering: %s", c.Primary, rt.badReason()),
				rt.lastBad.diagnosis, rt.badIDs, true
		}
		if held := now.Sub(st.Since); held >= c.MinHold {
			return StatePrimary, c.Primary, fmt.Sprintf("failed back to %s: healthy for %d consecutive rounds, %s held for %v",
				c.Primary, st.GoodRounds, st.ActiveSender, held.Round(time.Second)), "", nil, true
		}
	}
	return
}

func (rt *route) badReason() string {
	v := rt.lastBad
	why := fmt.Sprintf("%s unhealthy at %s (%d of %d providers) for %d consecutive rounds",
		rt.cfg.Primary, strings.Join(v.unhealthy, ", "), len(v.unhealthy), v.providers, rt.st.BadRounds)
	if v.agents != "" {
		why += "; last seen by " + v.agents
	}
	return why
}

// healthyBackup is the first backup (besides except) whose last round was
// healthy; a backup never probed yet does not count.
func (rt *route) healthyBackup(except string) string {
	for _, b := range rt.cfg.Backups {
		if h, ok := rt.backups[b]; ok && h.healthy && b != except {
			return b
		}
	}
	return ""
}

func (f *Failover) fastBurn(c targets.Route) (bool, string) {
	if !c.FailOverOnFastBurn || f.opts.FastBurn == nil {
		return false, ""
	}
	return f.opts.FastBurn(c.Name)
}

// transition applies and stores one change of state. The error is a
// conflict with another agent's decision (shared stores only): nothing
// was stored and the state was reloaded.
func (f *Failover) transition(ctx context.Context, rt *route, to, sender, reason, diag string, evidence []string) (Transition, error) {
	now := f.opts.Now().UTC()
	from := rt.st
	var by Operator
	switch {
	case to == StatePinned && rt.pin != nil:
		by = Operator{Name: rt.pin.Actor, Source: rt.pin.Source}
	case from.State == StatePinned && rt.unpinned != nil:
		by = *rt.unpinned
	}
	rt.unpinned = nil
	rt.st.State, rt.st.Reason, rt.st.Diagnosis = to, reason, diag
	rt.st.Evidence = append([]string(nil), evidence...)
	if sender != from.ActiveSender {
		rt.st.ActiveSender, rt.st.Since = sender, now
		rt.activeBad = 0
	}
	if to == StateBackup && from.State == StateFailingOver {
		// The decision keeps the evidence of why the primary was left.
		rt.st.Diagnosis, rt.st.Evidence = from.Diagnosis, from.Evidence
	}
	t := Transition{
		Type: "route_transition", Agent: f.opts.Agent, Route: rt.cfg.Name, At: now.Format(time.RFC3339Nano),
		FromState: from.State, ToState: to, FromSender: from.ActiveSender, ToSender: rt.st.ActiveSender,
		Decision: decision(rt.st, rt.cfg.Primary, rt.pin != nil), By: by.Name, Source: by.Source,
	}
	tr := &store.RouteTransition{Route: rt.cfg.Name, At: now, FromState: from.State, ToState: to,
		FromSender: from.ActiveSender, ToSender: rt.st.ActiveSender, Reason: reason, Diagnosis: rt.st.Diagnosis, Evidence: rt.st.Evidence,
		Actor: by.Name, Source: by.Source, Agent: f.opts.Agent}
	if err := f.save(ctx, rt, tr, t); err != nil {
		return Transition{}, err
	}
	attrs := []any{"route", rt.cfg.Name, "from", from.State, "to", to, "active_sender", rt.st.ActiveSender, "reason", reason}
	if by.Name != "" {
		attrs = append(attrs, "by", by.Name, "source", by.Source)
	}
	f.log.Info("route transition", attrs...)
	return t, nil
}

// save stores the route's state, with tr and its notifications. Alone,
// a failure is logged and the decision stands (it is retried with the
// next save); when agents share the store the save is conditional on the
// version the decision was taken from (with the intervals it counted),
// and a conflict drops the decision: the error is returned.
func (f *Failover) save(ctx context.Context, rt *route, tr *store.RouteTransition, t ...Transition) error {
	var out []store.OutboxEntry
	if tr != nil && f.opts.Outbox != nil {
		out = f.opts.Outbox(rt.cfg, t[0])
	}
	ctx = context.WithoutCancel(ctx)
	if rt.shared != nil {
		return f.saveShared(ctx, rt, tr, out)
	}
	if err := f.opts.Store.SaveRoute(ctx, &rt.st, tr, out); err != nil {
		f.log.Error("store route state", "route", rt.cfg.Name, "err", err)
	}
	return nil
}

func (f *Failover) changed(ctx context.Context, ts []Transition) {
	for _, t := range ts {
		for _, fn := range f.opts.Changed {
			fn(ctx, t)
		}
		if h := f.execs[t.Route]; h != nil {
			h.queue(t)
		}
	}
}

// Pin makes route use sender until Unpin, whatever the probes say; by is
// stored with the pin and its transition.
func (f *Failover) Pin(ctx context.Context, name, sender string, by Operator) (Decision, error) {
	f.mu.Lock()
	rt, ok := f.routes[name]
	if !ok {
		f.mu.Unlock()
		return Decision{}, fmt.Errorf("%w %q", ErrUnknownRoute, name)
	}
	if !slices.Contains(rt.cfg.Senders(), sender) {
		f.mu.Unlock()
		return Decision{}, fmt.Errorf("%w: %q (route %s has %s)", ErrUnknownSender, sender, name, strings.Join(rt.cfg.Senders(), ", "))
	}
	p := store.RoutePin{Route: name, Sender: sender, Reason: by.Reason, At: f.opts.Now().UTC(), Actor: by.Name, Source: by.Source}
	if err := f.opts.Store.SetPin(ctx, p); err != nil {
		f.mu.Unlock()
		return Decision{}, err
	}
	f.log.Info("route pinned", "route", name, "sender", sender, "by", by.Name, "source", by.Source, "reason", by.Reason)
	rt.pin = &p
	done := f.stepOrRefresh(ctx, rt)
	f.publish()
	d := decision(rt.st, rt.cfg.Primary, true)
	f.mu.Unlock()
	f.changed(ctx, done)
	return d, nil
}

// Unpin hands route back to the state machine; by is recorded with the
// transition out of the pinned state.
func (f *Failover) Unpin(ctx context.Context, name string, by Operator) (Decision, error) {
	f.mu.Lock()
	rt, ok := f.routes[name]
	if !ok {
		f.mu.Unlock()
		return Decision{}, fmt.Errorf("%w %q", ErrUnknownRoute, name)
	}
	if err := f.opts.Store.DeletePin(ctx, name); err != nil {
		f.mu.Unlock()
		return Decision{}, err
	}
	f.log.Info("route unpinned", "route", name, "by", by.Name, "source", by.Source, "reason", by.Reason)
	rt.pin = nil
	if rt.st.State == StatePinned {
		rt.unpinned = &by
	}
	done := f.stepOrRefresh(ctx, rt)
	f.publish()
	d := decision(rt.st, rt.cfg.Primary, false)
	f.mu.Unlock()
	f.changed(ctx, done)
	return d, nil
}

// Run picks up pins made by other processes, completes fail-backs whose
// hold time has passed and runs exec hooks, until ctx is done. It returns
// once the hooks have stopped too (a command running is killed).
func (f *Failover) Run(ctx context.Context) {
	var hooks sync.WaitGroup
	defer hooks.Wait()
	for _, h := range f.execs {
		hooks.Go(func() { h.run(ctx) })
	}
	t := time.NewTicker(f.opts.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pins, err := f.opts.Store.Pins(ctx)
		if err != nil {
			if ctx.Err() == nil {
				f.log.Error("read route pins", "err", err)
			}
			continue
		}
		var done []Transition
		f.mu.Lock()
		for _, name := range f.order {
			rt := f.routes[name]
			p, pinned := pins[name]
			switch {
			case pinned && slices.Contains(rt.cfg.Senders(), p.Sender):
				rt.pin = &p
			case pinned:
				if p.Sender != rt.ignored.Sender || !p.At.Equal(rt.ignored.At) {
					f.log.Warn("ignoring pin to a sender not on the route", "route", name, "sender", p.Sender)
					rt.ignored = p
				}
				rt.pin = nil
			default:
				rt.pin = nil
			}
			done = append(done, f.stepOrRefresh(ctx, rt)...)
		}
		f.publish()
		f.mu.Unlock()
		f.changed(ctx, done)
	}
}

// stepOrRefresh steps the route's state machine; when agents share the
// store, it refreshes the route instead (only the leader steps).
func (f *Failover) stepOrRefresh(ctx context.Context, rt *route) []Transition {
	if rt.shared != nil {
		return f.refreshShared(ctx, rt)
	}
	return f.step(ctx, rt)
}

// missing counts the providers of a round without a decided attempt.
func missing(r rounds.Round) int {
	seen := map[string]bool{}
	for _, a := range r.Attempts {
		seen[a.ProviderKey()] = true
	}
	return max(len(r.Providers)-len(seen), 0)
}
