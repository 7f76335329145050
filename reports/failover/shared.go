package failover

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/otpprobe/otpprobe/reports/rounds"
	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
)

// Several agents on one history (a PostgreSQL store). Every agent
// records its verdict on each of its rounds (route_rounds). One agent per
// route, elected with a PostgreSQL advisory lock, counts them by
// interval: the route's probe interval, aligned on the clock. An interval
// of a sender counts as unhealthy only when a quorum of the agents that
// reported a round of it in that interval saw it unhealthy. The counted
// intervals feed the same state machine as one agent's rounds do, and are
// stored with the state they led to, conditionally on the state's
// version: a transition is never taken twice. The other agents read the
// state back and serve it.

// Shared configures a Failover whose store other agents share.
type Shared struct {
	Store    SharedStore
	Election Election
}

// SharedStore is what deciding together needs of the store
// (reports/store.DB on PostgreSQL).
type SharedStore interface {
	RecordRouteRound(ctx context.Context, r store.RouteRound) error
	RouteRounds(ctx context.Context, route string, since time.Time) ([]store.RouteRound, error)
	RouteIntervals(ctx context.Context, route string, since time.Time) ([]store.RouteInterval, error)
	SaveRouteIf(ctx context.Context, st *store.RouteState, version int64, tr *store.RouteTransition, out []store.OutboxEntry, intervals []store.RouteInterval) error
}

// Election says which agent decides a route (reports/store.Election).
type Election interface {
	// Leader reports whether this agent decides route now, taking the
	// leadership when it is free.
	Leader(ctx context.Context, route string) (bool, error)
	// Live reports which of agents are running.
	Live(ctx context.Context, agents []string) (map[string]bool, error)
}

// Expected-agent lookback: an agent that reported a round of a sender in
// the last expectIntervals intervals (and is running) is waited for.
const expectIntervals = 3

// sharedRoute is a route's part of deciding together.
type sharedRoute struct {
	interval time.Duration // the route's probe interval: what one interval is
	wait     time.Duration // how long past an interval's end a running agent's round is waited for
	leading  bool
	lastErr  string               // the last election error logged, so it is logged once
	decided  map[string]time.Time // per sender, the start of the last interval counted
	pending  []store.RouteInterval
}

func newSharedRoute(cfg *targets.Config, rc targets.Route, now time.Time) *sharedRoute {
	var deadline time.Duration
	for _, p := range cfg.Probes {
		if (rc.Probe == "" || p.Name == rc.Probe) && slices.ContainsFunc(rc.Senders(), func(s string) bool { return slices.Contains(p.Senders, s) }) {
			deadline = max(deadline, p.Deadline)
		}
	}
	// A round is handed on at the latest at its deadline plus the round
	// assembler's grace (10s).
	return &sharedRoute{interval: cfg.RoundInterval(rc, now), wait: deadline + 11*time.Second}
}

// observeShared records this agent's verdict on r for each route it
// concerns, then lets the leader count what is complete.
func (f *Failover) observeShared(ctx context.Context, r rounds.Round) {
	var done []Transition
	f.mu.Lock()
	for _, name := range f.order {
		rt := f.routes[name]
		if !slices.Contains(rt.cfg.Senders(), r.Sender) || (rt.cfg.Probe != "" && rt.cfg.Probe != r.Probe) {
			continue
		}
		v, ok := roundVerdict(rt.cfg, r)
		if !ok {
			continue
		}
		rr := store.RouteRound{Route: name, Sender: r.Sender, RoundID: r.ID, Agent: f.opts.Agent, StartedAt: r.Start,
			Bad: v.bad, Unhealthy: v.unhealthy, Providers: v.providers, Diagnosis: v.diagnosis, Evidence: v.evidence}
		if err := f.opts.Shared.Store.RecordRouteRound(context.WithoutCancel(ctx), rr); err != nil {
			f.log.Error("record round verdict", "route", name, "err", err)
		}
		done = append(done, f.refreshShared(ctx, rt)...)
	}
	f.publish()
	f.mu.Unlock()
	f.changed(ctx, done)
}

// refreshShared reads the route's state back from the store, checks the
// leadership and, leading, counts the intervals that are complete and
// steps the state machine. Called with f.mu held.
func (f *Failover) refreshShared(ctx context.Context, rt *route) []Transition {
	sh := rt.shared
	leading, err := f.opts.Shared.Election.Leader(ctx, rt.cfg.Name)
	if err != nil && ctx.Err() == nil && err.Error() != sh.lastErr {
		f.log.Error("route leader election", "route", rt.cfg.Name, "err", err)
	}
	if err != nil {
		sh.lastErr = err.Error()
	} else {
		sh.lastErr = ""
	}
	if leading != sh.leading {
		f.log.Info(map[bool]string{true: "deciding the route (leader)", false: "no longer deciding the route"}[leading],
			"route", rt.cfg.Name, "agent", f.opts.Agent)
		sh.leading = leading
		sh.decided, sh.pending = nil, nil // a new leader continues from the store
		if f.opts.Leading != nil {
			f.opts.Leading(rt.cfg.Name, leading)
		}
	}
	f.reload(ctx, rt)
	if !leading {
		return nil
	}
	if sh.decided == nil {
		if err := f.loadCounted(ctx, rt); err != nil {
			f.log.Error("read counted intervals", "route", rt.cfg.Name, "err", err)
			return nil
		}
	}
	out, err := f.countIntervals(ctx, rt)
	if err != nil {
		f.log.Error("count intervals", "route", rt.cfg.Name, "err", err)
		return out
	}
	if sh.decided == nil { // a conflict: start again at the next refresh
		return out
	}
	out = append(out, f.step(ctx, rt)...) // what time alone decides (the hold)
	if len(sh.pending) > 0 {
		// The intervals counted and the streaks, if no transition carried them.
		f.save(ctx, rt, nil)
	}
	return out
}

// reload replaces the route's state with the stored one (another agent
// may have decided). Called with f.mu held.
func (f *Failover) reload(ctx context.Context, rt *route) {
	st, ok, err := f.opts.Store.Route(context.WithoutCancel(ctx), rt.cfg.Name)
	if err != nil {
		f.log.Error("read route state", "route", rt.cfg.Name, "err", err)
		return
	}
	if ok && st.Version != rt.st.Version {
		if st.ActiveSender != rt.st.ActiveSender {
			rt.activeBad = 0
		}
		changed := st.State != rt.st.State || st.ActiveSender != rt.st.ActiveSender
		rt.st = st
		if changed && f.opts.Loaded != nil {
			f.opts.Loaded(decision(rt.st, rt.cfg.Primary, rt.pin != nil))
		}
	}
}

// saveShared stores the state conditionally on the version it was read
// at, with the intervals counted since the last save.
func (f *Failover) saveShared(ctx context.Context, rt *route, tr *store.RouteTransition, out []store.OutboxEntry) error {
	sh := rt.shared
	err := f.opts.Shared.Store.SaveRouteIf(ctx, &rt.st, rt.st.Version, tr, out, sh.pending)
	if err == nil {
		sh.pending = nil
		return nil
	}
	if errors.Is(err, store.ErrRouteConflict) {
		f.log.Warn("route decided by another agent meanwhile; this decision is dropped", "route", rt.cfg.Name, "err", err)
	} else {
		f.log.Error("store route state", "route", rt.cfg.Name, "err", err)
	}
	// Start again from what is stored.
	sh.decided, sh.pending = nil, nil
	rt.st.Version = -1 // whatever is stored replaces it
	f.reload(ctx, rt)
	return err
}

// loadCounted learns, as a new leader, where counting stopped: the last
// interval counted of each sender and each backup's last verdict.
func (f *Failover) loadCounted(ctx context.Context, rt *route) error {
	sh := rt.shared
	now := f.opts.Now()
	ivs, err := f.opts.Shared.Store.RouteIntervals(ctx, rt.cfg.Name, now.Add(-sh.wait-10*sh.interval))
	if err != nil {
		return err
	}
	sh.decided = map[string]time.Time{}
	for _, iv := range ivs {
		sh.decided[iv.Sender] = iv.Start
		if iv.Sender != rt.cfg.Primary {
			rt.backups[iv.Sender] = health{healthy: !iv.Bad, at: iv.Start}
		}
	}
	return nil
}

// countIntervals counts, oldest first, every interval of the route's
// senders that is complete: each running agent that reported a round of
// the sender lately has reported its round of this interval or a later
// one, or the interval ended longer ago than a round can take. The state
// machine steps after each, as it does after each round of one agent;
// it returns the transitions taken.
func (f *Failover) countIntervals(ctx context.Context, rt *route) ([]Transition, error) {
	sh := rt.shared
	now := f.opts.Now()
	iv := sh.interval
	floor := func(t time.Time) time.Time { return t.Truncate(iv) }
	// Never counted: start with the intervals that may still be open.
	fresh := floor(now.Add(-sh.wait - 2*iv))
	from := now
	for _, s := range rt.cfg.Senders() {
		d, ok := sh.decided[s]
		if !ok || d.Before(fresh) {
			d = fresh.Add(-iv)
			sh.decided[s] = d
		}
		from = minTime(from, d.Add(-expectIntervals*iv))
	}
	rrs, err := f.opts.Shared.Store.RouteRounds(ctx, rt.cfg.Name, from)
	if err != nil {
		return nil, err
	}
	bySender := map[string][]store.RouteRound{}
	var agents []string
	for _, r := range rrs {
		bySender[r.Sender] = append(bySender[r.Sender], r)
		if !slices.Contains(agents, r.Agent) {
			agents = append(agents, r.Agent)
		}
	}
	live, err := f.opts.Shared.Election.Live(ctx, agents)
	if err != nil {
		return nil, err
	}
	type closed struct {
		sender string
		start  time.Time
		rounds []store.RouteRound // the latest of each reporting agent
	}
	var ready []closed
	for _, s := range rt.cfg.Senders() {
		rs := bySender[s]
		for k := sh.decided[s].Add(iv); !k.After(now); k = k.Add(iv) {
			end := k.Add(iv)
			latest := map[string]store.RouteRound{}
			expected := map[string]bool{}
			later := map[string]bool{}
			for _, r := range rs {
				switch {
				case r.StartedAt.Before(k.Add(-expectIntervals * iv)):
				case r.StartedAt.Before(k):
					expected[r.Agent] = true
				case r.StartedAt.Before(end):
					latest[r.Agent] = r // rounds are oldest first: the last one wins
				default:
					later[r.Agent] = true
				}
			}
			done := !now.Before(end.Add(sh.wait))
			if !done {
				done = len(latest) > 0 || len(later) > 0
				for a := range expected {
					if _, ok := latest[a]; !ok && !later[a] && live[a] {
						done = false
					}
				}
			}
			if !done {
				break
			}
			c := closed{sender: s, start: k}
			for _, r := range latest {
				c.rounds = append(c.rounds, r)
			}
			slices.SortFunc(c.rounds, func(a, b store.RouteRound) int { return strings.Compare(a.Agent, b.Agent) })
			ready = append(ready, c)
		}
	}
	// Oldest first; within an interval the backups before the primary, so
	// a failover knows the backups' health of the same interval.
	slices.SortStableFunc(ready, func(a, b closed) int {
		if c := a.start.Compare(b.start); c != 0 {
			return c
		}
		return boolCmp(a.sender == rt.cfg.Primary, b.sender == rt.cfg.Primary)
	})
	var out []Transition
	for _, c := range ready {
		sh.decided[c.sender] = c.start
		if len(c.rounds) == 0 {
			continue // nobody probed it in this interval: nothing to count
		}
		v, rec := f.intervalVerdict(rt, c.sender, c.start, c.rounds)
		sh.pending = append(sh.pending, rec)
		rt.count(v)
		f.log.Debug("interval counted", "route", rt.cfg.Name, "sender", c.sender, "start", c.start, "bad", v.bad, "agents", v.agents)
		out = append(out, f.step(ctx, rt)...)
		if sh.decided == nil { // another agent decided meanwhile
			return out, nil
		}
	}
	return out, nil
}

// intervalVerdict applies the quorum to one interval's rounds (one per
// agent that reported).
func (f *Failover) intervalVerdict(rt *route, sender string, start time.Time, rs []store.RouteRound) (verdict, store.RouteInterval) {
	rec := store.RouteInterval{Route: rt.cfg.Name, Sender: sender, Start: start, Leader: f.opts.Agent, DecidedAt: f.opts.Now().UTC()}
	v := verdict{sender: sender, start: start}
	var diags []string
	for _, r := range rs {
		rec.Agents = append(rec.Agents, r.Agent)
		rec.Rounds = append(rec.Rounds, r.RoundID)
		v.providers = max(v.providers, r.Providers)
		if !r.Bad {
			continue
		}
		rec.BadAgents = append(rec.BadAgents, r.Agent)
		v.evidence = append(v.evidence, r.Evidence...)
		for _, p := range r.Unhealthy {
			if !slices.Contains(v.unhealthy, p) {
				v.unhealthy = append(v.unhealthy, p)
			}
		}
		if r.Diagnosis != "" && !slices.Contains(diags, r.Diagnosis) {
			diags = append(diags, r.Diagnosis)
		}
	}
	slices.Sort(v.unhealthy)
	rec.Quorum = Quorum(rt.cfg.Quorum, len(rs))
	rec.Bad = len(rec.BadAgents) >= rec.Quorum
	v.bad = rec.Bad
	v.diagnosis = strings.Join(diags, "; ")
	if !v.bad {
		v.evidence = nil
		for _, r := range rs {
			v.evidence = append(v.evidence, r.Evidence...)
		}
	}
	v.agents = fmt.Sprintf("%d of %d agents (%s), quorum %d", len(rec.BadAgents), len(rs), strings.Join(rec.BadAgents, ", "), rec.Quorum)
	return v, rec
}

// Quorum is how many of n reporting agents must see a sender unhealthy
// for the interval to count as unhealthy: configured (capped at n, so a
// lone surviving agent still decides), else a majority of n.
func Quorum(configured, n int) int {
	if configured > 0 {
		return max(1, min(configured, n))
	}
	return n/2 + 1
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
