package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/otpprobe/otpprobe/reports/store"
)

// Store keeps alert state and the outbox (reports/store.SQLite).
type Store interface {
	SaveAlert(ctx context.Context, a store.AlertRecord, out []store.OutboxEntry) error
	FiringAlerts(ctx context.Context) ([]store.AlertRecord, error)
	Enqueue(ctx context.Context, out []store.OutboxEntry) error
	DueOutbox(ctx context.Context, now time.Time, limit int) ([]store.OutboxEntry, error)
	NextOutbox(ctx context.Context) (time.Time, bool, error)
	Delivered(ctx context.Context, id int64, at time.Time) error
	Retry(ctx context.Context, e store.OutboxEntry, next time.Time, cause string) error
	PruneOutbox(ctx context.Context, cutoff time.Time) error
}

// Notifier delivers queued notifications somewhere.
type Notifier interface {
	// Name is unique among notifiers, e.g. "webhook:ops"; outbox entries
	// are addressed by it.
	Name() string
	// Accepts reports whether the notifier takes notifications of kind
	// ("alert" or "route_transition").
	Accepts(kind string) bool
	// Notify delivers one notification; payload is an Event (kind alert)
	// or a failover.Transition as JSON. An error means try again later.
	Notify(ctx context.Context, kind string, payload []byte) error
}

// Kinds of notifications.
const (
	KindAlert      = "alert"
	KindTransition = "route_transition"
)

// Options configure a Manager.
type Options struct {
	Store     Store
	Notifiers []Notifier
	Logger    *slog.Logger
	Agent     string
	Now       func() time.Time
	// RetryBase and RetryMax bound the exponential backoff between
	// delivery attempts (defaults 2s and 5m; ±20% jitter).
	RetryBase, RetryMax time.Duration
	// Resend is how often firing alerts are re-sent to Alertmanager-style
	// notifiers that expect it (default 1m).
	Resend time.Duration
	// Delivered is told the result ("ok" or "error") of every delivery
	// attempt, e.g. to count it in a metric.
	Delivered func(notifier, result string)
	// Changed is told about every alert that starts firing or resolves.
	Changed func(a Alert)
}

// Manager fires and resolves alerts and delivers the outbox.
type Manager struct {
	opts      Options
	log       *slog.Logger
	notifiers map[string]Notifier
	wake      chan struct{}

	mu     sync.Mutex
	firing map[string]Alert // by key
}

// New loads the firing alerts from the store, so one that fired before a
// restart is not notified again.
func New(ctx context.Context, opts Options) (*Manager, error) {
	if opts.Store == nil {
		return nil, errors.New("alert: no store")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RetryBase == 0 {
		opts.RetryBase = 2 * time.Second
	}
	if opts.RetryMax == 0 {
		opts.RetryMax = 5 * time.Minute
	}
	if opts.Resend == 0 {
		opts.Resend = time.Minute
	}
	m := &Manager{opts: opts, log: opts.Logger, notifiers: map[string]Notifier{},
		wake: make(chan struct{}, 1), firing: map[string]Alert{}}
	for _, n := range opts.Notifiers {
		if _, dup := m.notifiers[n.Name()]; dup {
			return nil, fmt.Errorf("alert: two notifiers named %q", n.Name())
		}
		m.notifiers[n.Name()] = n
	}
	recs, err := opts.Store.FiringAlerts(ctx)
	if err != nil {
		return nil, fmt.Errorf("alert: %w", err)
	}
	for _, r := range recs {
		a := Alert{Name: r.Name, Labels: r.Labels, Summary: r.Annotations["summary"], Diagnosis: r.Annotations["diagnosis"],
			Evidence: r.Evidence, Status: Firing, StartsAt: r.StartsAt}
		m.firing[r.Key] = a
		if opts.Changed != nil {
			opts.Changed(a)
		}
	}
	return m, nil
}

// Fire starts alert a, or refreshes its diagnosis and evidence when it is
// already firing (no new notification).
func (m *Manager) Fire(ctx context.Context, a Alert) error {
	a.Labels = maps.Clone(a.Labels)
	if a.Labels == nil {
		a.Labels = map[string]string{}
	}
	if a.Evidence == nil {
		a.Evidence = []string{} // [] in JSON, never null
	}
	key := a.Key()
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.firing[key]; ok {
		cur.Evidence, cur.Diagnosis = a.Evidence, a.Diagnosis
		m.firing[key] = cur
		return nil
	}
	a.Status, a.StartsAt, a.EndsAt = Firing, m.opts.Now().UTC(), time.Time{}
	if err := m.save(ctx, key, a); err != nil {
		return err
	}
	m.firing[key] = a
	m.log.Warn("alert firing", "alert", describe(a.Name, a.Labels), "summary", a.Summary, "diagnosis", a.Diagnosis)
	if m.opts.Changed != nil {
		m.opts.Changed(a)
	}
	return nil
}

// Resolve ends the alert name{labels} if it fires; otherwise it does
// nothing.
func (m *Manager) Resolve(ctx context.Context, name string, labels map[string]string, summary string) error {
	key := Key(name, labels)
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.firing[key]
	if !ok {
		return nil
	}
	a.Status, a.EndsAt = Resolved, m.opts.Now().UTC()
	if summary != "" {
		a.Summary = summary
	}
	if err := m.save(ctx, key, a); err != nil {
		return err
	}
	delete(m.firing, key)
	m.log.Info("alert resolved", "alert", describe(a.Name, a.Labels), "summary", a.Summary)
	if m.opts.Changed != nil {
		m.opts.Changed(a)
	}
	return nil
}

// save stores the alert's state with a notification per notifier.
func (m *Manager) save(ctx context.Context, key string, a Alert) error {
	payload, err := json.Marshal(Event{Type: KindAlert, Agent: m.opts.Agent, Alert: &a})
	if err != nil {
		return err
	}
	var out []store.OutboxEntry
	for _, name := range slices.Sorted(maps.Keys(m.notifiers)) {
		if m.notifiers[name].Accepts(KindAlert) {
			out = append(out, store.OutboxEntry{Notifier: name, Kind: KindAlert, Payload: payload})
		}
	}
	rec := store.AlertRecord{Key: key, Name: a.Name, Status: a.Status, Labels: a.Labels,
		Annotations: map[string]string{"summary": a.Summary, "diagnosis": a.Diagnosis},
		Evidence:    a.Evidence, StartsAt: a.StartsAt, EndsAt: a.EndsAt}
	if err := m.opts.Store.SaveAlert(context.WithoutCancel(ctx), rec, out); err != nil {
		return fmt.Errorf("alert %s: %w", a.Name, err)
	}
	m.Wake()
	return nil
}

// Firing returns the alerts firing now, oldest first.
func (m *Manager) Firing() []Alert {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := slices.Collect(maps.Values(m.firing))
	slices.SortFunc(out, func(a, b Alert) int { return a.StartsAt.Compare(b.StartsAt) })
	return out
}

// Entries builds outbox entries carrying payload (JSON-encoded) to the
// named webhook notifiers ("ops" means "webhook:ops"), for notifications
// stored together with another change, such as a route transition.
func (m *Manager) Entries(kind string, webhooks []string, payload any) []store.OutboxEntry {
	data, err := json.Marshal(payload)
	if err != nil {
		m.log.Error("encode notification", "kind", kind, "err", err)
		return nil
	}
	var out []store.OutboxEntry
	for _, w := range webhooks {
		name := WebhookPrefix + w
		if n, ok := m.notifiers[name]; ok && n.Accepts(kind) {
			out = append(out, store.OutboxEntry{Notifier: name, Kind: kind, Payload: data})
		}
	}
	return out
}

// Wake makes Run look at the outbox now (after entries were queued by
// someone else's transaction).
func (m *Manager) Wake() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

const (
	outboxBatch   = 100                // due notifications one pass delivers
	keepDelivered = 7 * 24 * time.Hour // delivered ones are kept this long
)

// Run delivers the outbox until ctx is done: due entries in order, each
// notifier's in its own order, failures retried with backoff.
func (m *Manager) Run(ctx context.Context) {
	resend := time.NewTicker(m.opts.Resend)
	defer resend.Stop()
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	for {
		m.deliverDue(ctx)
		wait := 30 * time.Second
		if next, ok, err := m.opts.Store.NextOutbox(ctx); err == nil && ok {
			wait = min(max(time.Until(next), 10*time.Millisecond), wait)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-m.wake:
		case <-timer.C:
		case <-resend.C:
			m.resend(ctx)
		case <-prune.C:
			// Delivered notifications are kept a week for inspection.
			if err := m.opts.Store.PruneOutbox(ctx, m.opts.Now().Add(-keepDelivered)); err != nil && ctx.Err() == nil {
				m.log.Error("prune outbox", "err", err)
			}
		}
		timer.Stop()
	}
}

func (m *Manager) deliverDue(ctx context.Context) {
	due, err := m.opts.Store.DueOutbox(ctx, m.opts.Now(), outboxBatch)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Error("read outbox", "err", err)
		}
		return
	}
	failed := map[string]bool{}
	for _, e := range due {
		if ctx.Err() != nil {
			return
		}
		if failed[e.Notifier] {
			continue // keep its order: the rest waits for the retry
		}
		n, ok := m.notifiers[e.Notifier]
		if !ok {
			m.log.Warn("dropping a notification for a notifier no longer configured", "notifier", e.Notifier, "id", e.ID)
			m.delivered(ctx, e)
			continue
		}
		err := n.Notify(ctx, e.Kind, e.Payload)
		if m.opts.Delivered != nil {
			m.opts.Delivered(e.Notifier, map[bool]string{true: "ok", false: "error"}[err == nil])
		}
		if err == nil {
			m.delivered(ctx, e)
			continue
		}
		if ctx.Err() != nil {
			return // shutting down: the entry stays due for the next start
		}
		failed[e.Notifier] = true
		next := m.opts.Now().Add(m.backoff(e.Tries))
		m.log.Warn("notification failed; will retry", "notifier", e.Notifier, "id", e.ID, "tries", e.Tries+1,
			"retry_at", next.UTC().Format(time.RFC3339), "err", err)
		if err := m.opts.Store.Retry(context.WithoutCancel(ctx), e, next, err.Error()); err != nil {
			m.log.Error("record notification retry", "id", e.ID, "err", err)
		}
	}
}

func (m *Manager) delivered(ctx context.Context, e store.OutboxEntry) {
	if err := m.opts.Store.Delivered(context.WithoutCancel(ctx), e.ID, m.opts.Now()); err != nil {
		m.log.Error("record notification delivered", "id", e.ID, "err", err)
	}
}

// backoff is RetryBase·2^tries, at most RetryMax, with ±20% jitter.
func (m *Manager) backoff(tries int) time.Duration {
	d := m.opts.RetryMax
	if tries < 30 {
		d = min(m.opts.RetryBase<<tries, m.opts.RetryMax)
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// resend re-sends firing alerts to notifiers that forget alerts not
// repeated (Alertmanager resolves them after its resolve_timeout).
func (m *Manager) resend(ctx context.Context) {
	firing := m.Firing()
	for _, n := range m.notifiers {
		r, ok := n.(interface{ Resends() bool })
		if !ok || !r.Resends() {
			continue
		}
		for _, a := range firing {
			payload, err := json.Marshal(Event{Type: KindAlert, Agent: m.opts.Agent, Alert: &a})
			if err != nil {
				continue
			}
			if err := n.Notify(ctx, KindAlert, payload); err != nil && ctx.Err() == nil {
				m.log.Debug("re-sending a firing alert failed", "notifier", n.Name(), "err", err)
				break
			}
		}
	}
}
