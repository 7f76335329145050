// Package dnswatch keeps watch over the DNS of the domains otpprobe sends
// for: it runs the dnscheck audits on the config's schedule, stores every
// report as a snapshot, turns differences against the previous snapshot
// and the pinned baseline into change events (stored, counted in metrics,
// handed to alerts), and diagnoses each decided attempt with the snapshot
// closest to it.
package dnswatch

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
	"github.com/otpprobe/otpprobe/verify/dnscheck"
	"github.com/otpprobe/otpprobe/verify/resolver"
)

// Store keeps snapshots, baselines and changes (store.SQLite).
type Store interface {
	SaveDNSSnapshot(ctx context.Context, rep dnscheck.Report) error
	LatestDNSSnapshot(ctx context.Context, domain string) (dnscheck.Report, bool, error)
	DNSBaseline(ctx context.Context, domain string) (dnscheck.Report, bool, error)
	PinDNSBaseline(ctx context.Context, rep dnscheck.Report, at time.Time) error
	SaveDNSChanges(ctx context.Context, changes []store.DNSChange) error
}

// Metrics receives the posture per sender (metrics.Metrics).
type Metrics interface {
	DNSChanged(sender, record string)
	SetDNSFindings(sender string, bySeverity map[string]int)
	// InitDNSSender exports a checked sender's change counters at 0, so
	// the first change after a start is an increase.
	InitDNSSender(sender string)
}

// Event is a change seen in a domain's DNS: what alerts are told.
type Event struct {
	Domain  string
	Senders []string // config senders whose From is Domain
	At      time.Time
	Against string // store.AgainstPrevious or store.AgainstBaseline
	Changes []dnscheck.Change
	Report  dnscheck.Report // the check that saw it
}

// Options configure a Watcher. Only Resolver is required.
type Options struct {
	Resolver *resolver.Resolver
	Checker  dnscheck.Checker
	Store    Store
	Metrics  Metrics
	// OnChange is called for each change event, after it is stored; it
	// must not block.
	OnChange func(Event)
	Logger   *slog.Logger
	// MaxAge is how old a snapshot may be for a diagnosis before a fresh
	// check is taken (default: the schedule's interval).
	MaxAge time.Duration
	// CheckTimeout bounds one domain's check (default 20s).
	CheckTimeout time.Duration
	Now          func() time.Time
}

// Result is one domain's check with the changes it found.
type Result struct {
	Report dnscheck.Report
	// Changes are against the previous snapshot; Baseline against the
	// pinned baseline (nil when none is pinned).
	Changes  []dnscheck.Change
	Baseline []dnscheck.Change
	Pinned   bool // a baseline exists
	// Checked is what the check looked at beyond the domain's own
	// records: the DKIM selectors and the addresses SPF was evaluated
	// for, each with where it came from.
	Checked []Checked
}

// Checked is one selector or source address a check covered.
type Checked struct {
	Kind  string `json:"kind"`  // "dkim_selector" or "spf_source_ip"
	Value string `json:"value"` // selector name or address
	// From is "config", or "canaries of SENDER" when learned from the
	// headers of our delivered canaries.
	From string `json:"from"`
	// LastSeen is when a canary last showed it (learned ones only).
	LastSeen time.Time `json:"last_seen,omitzero"`
}

// Watcher checks a config's domains. Safe for concurrent use.
type Watcher struct {
	cfg      targets.DNSChecks
	opts     Options
	log      *slog.Logger
	senderOf map[string]string   // sender name → From domain
	sendersB map[string][]string // domain → sender names

	mu      sync.Mutex
	domains map[string]*dnscheck.Domain // by name
	order   []string
	latest  map[string]dnscheck.Report
	stale   map[string]bool                   // selectors or source IPs learned since the last check
	locks   map[string]*sync.Mutex            // one check per domain at a time
	seen    map[string]seenFrom               // by sender: its last delivered canary
	changes map[string]changeSet              // by domain: the last changes seen
	learned map[string]map[string]learnedFrom // by domain, then "kind value"
}

// learnedFrom is who showed a learned selector or address, and when.
type learnedFrom struct {
	sender string
	at     time.Time
}

// changeSet is one check's changes against the previous snapshot.
type changeSet struct {
	at      time.Time
	changes []dnscheck.Change
}

// New builds a Watcher for the senders' From domains and the extra
// domains of cfg.DNSChecks.
func New(cfg *targets.Config, opts Options) (*Watcher, error) {
	if opts.Resolver == nil {
		return nil, fmt.Errorf("dnswatch: no resolver")
	}
	if err := cfg.DNSChecks.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = cfg.DNSChecks.Interval()
	}
	if opts.CheckTimeout == 0 {
		opts.CheckTimeout = 20 * time.Second
	}
	w := &Watcher{
		cfg: cfg.DNSChecks, opts: opts, log: opts.Logger,
		senderOf: map[string]string{}, sendersB: map[string][]string{},
		domains: map[string]*dnscheck.Domain{}, latest: map[string]dnscheck.Report{},
		stale: map[string]bool{}, locks: map[string]*sync.Mutex{}, seen: map[string]seenFrom{}, changes: map[string]changeSet{},
		learned: map[string]map[string]learnedFrom{},
	}
	for _, s := range cfg.Senders {
		if d := strings.ToLower(s.Domain()); d != "" {
			w.senderOf[s.Name] = d
			w.sendersB[d] = append(w.sendersB[d], s.Name)
		}
	}
	for _, d := range domainsFromConfig(cfg) {
		w.add(d)
	}
	if opts.Metrics != nil {
		for s := range w.senderOf {
			opts.Metrics.InitDNSSender(s)
		}
	}
	for _, extra := range cfg.DNSChecks.Domains {
		d := w.add(dnscheck.Domain{Name: strings.TrimSuffix(strings.ToLower(extra.Name), ".")})
		for _, s := range extra.Selectors {
			d.AddSelector(strings.ToLower(s), true)
		}
	}
	return w, nil
}

// NewResolver builds the resolver the dns_checks block asks for.
func NewResolver(cfg targets.DNSChecks) (*resolver.Resolver, error) {
	return resolver.New(resolver.Config{Servers: cfg.ServerAddrs(), Timeout: cfg.Resolver.Timeout, Retries: cfg.Resolver.Retries})
}

func (w *Watcher) add(d dnscheck.Domain) *dnscheck.Domain {
	if cur, ok := w.domains[d.Name]; ok {
		for _, s := range d.Selectors {
			cur.AddSelector(s.Name, s.Active)
		}
		cur.Senders = append(cur.Senders, d.Senders...)
		return cur
	}
	w.domains[d.Name] = &d
	w.order = append(w.order, d.Name)
	w.locks[d.Name] = &sync.Mutex{}
	return &d
}

// Domains returns what is checked, in config order.
func (w *Watcher) Domains() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.order)
}

// maxSourceIPs bounds the delivering addresses a domain's check evaluates
// SPF for: a large sender (M365) delivers from thousands over time, and
// each one learned would otherwise make every later check longer.
const maxSourceIPs = 32

// Learn records a selector seen signing a canary of domain and the
// address that delivered it (the newest maxSourceIPs are kept); the next
// diagnosis of the domain then takes a fresh check, since the last one did
// not look at them.
func (w *Watcher) Learn(domain, selector string, sourceIP string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	d, ok := w.domains[strings.ToLower(domain)]
	if !ok {
		return
	}
	if selector != "" && !slices.ContainsFunc(d.Selectors, func(s dnscheck.Selector) bool { return s.Active && strings.EqualFold(s.Name, selector) }) {
		d.AddSelector(strings.ToLower(selector), true)
		w.stale[d.Name] = true
	}
	if ip := parseIP(sourceIP); ip != nil && !slices.ContainsFunc(d.SourceIPs, ip.Equal) {
		if n := len(d.SourceIPs) - maxSourceIPs + 1; n > 0 {
			// check works on a clone, so the slice may change in place.
			d.SourceIPs = slices.Delete(d.SourceIPs, 0, n)
		}
		d.AddSourceIP(ip)
		w.stale[d.Name] = true
	}
}

// CheckAll checks every domain, one at a time (a config has a handful).
func (w *Watcher) CheckAll(ctx context.Context) []Result {
	var out []Result
	for _, name := range w.Domains() {
		if ctx.Err() != nil {
			break
		}
		out = append(out, w.Check(ctx, name))
	}
	return out
}

// Check checks one domain now: the report is stored, compared with the
// previous snapshot and the baseline, and the changes become events.
func (w *Watcher) Check(ctx context.Context, domain string) Result {
	w.mu.Lock()
	lock := w.locks[domain]
	w.mu.Unlock()
	if lock == nil {
		return Result{Report: dnscheck.Report{Domain: domain, CheckedAt: w.opts.Now().UTC(),
			Findings: []dnscheck.Finding{{Severity: dnscheck.SeverityError, Code: "domain.unknown", Name: domain,
				Message: "The domain is not in the configuration."}}}}
	}
	lock.Lock()
	defer lock.Unlock()
	return w.check(ctx, domain)
}

// check runs with the domain's lock held.
func (w *Watcher) check(ctx context.Context, domain string) Result {
	w.mu.Lock()
	d := *w.domains[domain]
	d.Selectors = slices.Clone(d.Selectors)
	d.SourceIPs = slices.Clone(d.SourceIPs)
	d.Senders = slices.Clone(d.Senders)
	prev, havePrev := w.latest[domain]
	delete(w.stale, domain)
	w.mu.Unlock()

	cctx, cancel := context.WithTimeout(ctx, w.opts.CheckTimeout)
	rep := w.opts.Checker.Check(cctx, w.opts.Resolver, d)
	cancel()
	res := Result{Report: rep, Checked: w.checked(d)}
	now := rep.CheckedAt
	if ctx.Err() != nil {
		// Cut short: the answers not read would all look like changes.
		return res
	}

	if !havePrev && w.opts.Store != nil {
		var err error
		prev, havePrev, err = w.opts.Store.LatestDNSSnapshot(ctx, domain)
		if err != nil {
			w.log.Error("read last DNS snapshot", "domain", domain, "err", err)
		}
	}
	if havePrev {
		res.Changes = recordChanges(prev.Records, rep.Records)
	}
	var stored []store.DNSChange
	if w.opts.Store != nil {
		base, ok, err := w.opts.Store.DNSBaseline(ctx, domain)
		if err != nil {
			w.log.Error("read DNS baseline", "domain", domain, "err", err)
		}
		if ok {
			res.Pinned = true
			res.Baseline = recordChanges(base.Records, rep.Records)
		}
		if err := w.opts.Store.SaveDNSSnapshot(ctx, rep); err != nil {
			w.log.Error("store DNS snapshot", "domain", domain, "err", err)
		}
		// The baseline difference is an event when it moved, i.e. with
		// every change against the previous snapshot; otherwise a zone
		// that differs from its baseline would raise one every check.
		if len(res.Changes) > 0 {
			stored = append(stored, asStored(domain, now, store.AgainstPrevious, res.Changes)...)
			stored = append(stored, asStored(domain, now, store.AgainstBaseline, res.Baseline)...)
			if err := w.opts.Store.SaveDNSChanges(ctx, stored); err != nil {
				w.log.Error("store DNS changes", "domain", domain, "err", err)
			}
		}
	}
	w.mu.Lock()
	w.latest[domain] = rep
	if len(res.Changes) > 0 {
		w.changes[domain] = changeSet{at: now, changes: res.Changes}
	}
	senders := slices.Clone(w.sendersB[domain])
	w.mu.Unlock()

	w.publish(domain, senders, res)
	return res
}

// checked lists d's selectors and source addresses with their origin.
func (w *Watcher) checked(d dnscheck.Domain) []Checked {
	w.mu.Lock()
	defer w.mu.Unlock()
	learned := w.learned[d.Name]
	origin := func(key string) (string, time.Time) {
		if l, ok := learned[key]; ok {
			return "canaries of " + l.sender, l.at
		}
		return "config", time.Time{}
	}
	var out []Checked
	for _, sel := range d.Selectors {
		if !sel.Active {
			continue
		}
		from, at := origin(kindSelector + " " + sel.Name)
		out = append(out, Checked{Kind: kindSelector, Value: sel.Name, From: from, LastSeen: at})
	}
	for _, ip := range d.SourceIPs {
		from, at := origin(kindSourceIP + " " + ip.String())
		out = append(out, Checked{Kind: kindSourceIP, Value: ip.String(), From: from, LastSeen: at})
	}
	return out
}

const (
	kindSelector = "dkim_selector"
	kindSourceIP = "spf_source_ip"
)

// recordChanges is dnscheck.Diff without RRsets read on one side only:
// those follow from a change in the record that led to them (an include
// added) or from what the check looked at (a selector learned), not from
// a change of their own.
func recordChanges(before, after []dnscheck.RRset) []dnscheck.Change {
	var out []dnscheck.Change
	for _, c := range dnscheck.Diff(before, after) {
		if c.Before != nil && c.After != nil {
			out = append(out, c)
		}
	}
	return out
}

func asStored(domain string, at time.Time, against string, cs []dnscheck.Change) []store.DNSChange {
	out := make([]store.DNSChange, len(cs))
	for i, c := range cs {
		out[i] = store.DNSChange{Domain: domain, DetectedAt: at, Against: against, Change: c}
	}
	return out
}

// publish updates metrics, logs and calls OnChange.
func (w *Watcher) publish(domain string, senders []string, res Result) {
	rep := res.Report
	if w.opts.Metrics != nil {
		counts := map[string]int{}
		for _, f := range rep.Findings {
			counts[metricSeverity(f.Severity)]++
		}
		for _, s := range senders {
			w.opts.Metrics.SetDNSFindings(s, counts)
			for _, c := range res.Changes {
				w.opts.Metrics.DNSChanged(s, RecordKind(domain, c.Name, c.Type))
			}
		}
	}
	if len(res.Changes) == 0 {
		return
	}
	for _, c := range res.Changes {
		w.log.Warn("DNS record changed", "domain", domain, "name", c.Name, "type", c.Type,
			"before", rrText(c.Before), "after", rrText(c.After))
	}
	if w.opts.OnChange == nil {
		return
	}
	w.opts.OnChange(Event{Domain: domain, Senders: senders, At: rep.CheckedAt, Against: store.AgainstPrevious, Changes: res.Changes, Report: rep})
	if len(res.Baseline) > 0 {
		w.opts.OnChange(Event{Domain: domain, Senders: senders, At: rep.CheckedAt, Against: store.AgainstBaseline, Changes: res.Baseline, Report: rep})
	}
}

// metricSeverity maps findings onto the metric's severities (info,
// warning, critical): an error is broken mail too, so it counts as
// critical for alerting.
func metricSeverity(s dnscheck.Severity) string {
	switch {
	case s >= dnscheck.SeverityError:
		return "critical"
	case s == dnscheck.SeverityWarning:
		return "warning"
	}
	return "info"
}

// RecordKind names what an RRset is for (spf, dkim, dmarc, mx, mta-sts,
// tls-rpt, dane, …): the bounded metric label for a change.
func RecordKind(domain, name, typ string) string {
	n := strings.TrimSuffix(strings.ToLower(name), ".")
	switch {
	case strings.Contains(n, "._domainkey."):
		return "dkim"
	case strings.HasPrefix(n, "_dmarc.") || strings.Contains(n, "._report._dmarc."):
		return "dmarc"
	case strings.HasPrefix(n, "_mta-sts.") || strings.HasPrefix(n, "mta-sts."):
		return "mta-sts"
	case strings.HasPrefix(n, "_smtp._tls."):
		return "tls-rpt"
	case typ == "TLSA":
		return "dane"
	case typ == "MX" && n == domain:
		return "mx"
	case typ == "TXT":
		return "spf" // the domain's TXT and every include's
	}
	return "other"
}

func rrText(r *dnscheck.RRset) string {
	if r == nil {
		return "(not read)"
	}
	if len(r.Data) == 0 {
		return r.Rcode
	}
	return r.Rcode + " " + strings.Join(r.Data, " | ")
}

// LastChanges returns the changes the last check that found any saw in
// domain, and when.
func (w *Watcher) LastChanges(domain string) ([]dnscheck.Change, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	cs := w.changes[domain]
	return cs.changes, cs.at
}

// Pin makes each result's report the baseline of its domain.
func (w *Watcher) Pin(ctx context.Context, results []Result) error {
	if w.opts.Store == nil {
		return fmt.Errorf("dnswatch: no store to pin the baseline in")
	}
	for _, r := range results {
		if err := w.opts.Store.PinDNSBaseline(ctx, r.Report, w.opts.Now().UTC()); err != nil {
			return err
		}
	}
	return nil
}

// Report returns a report of domain no older than MaxAge and covering
// what was learned since it was taken: the last one, else a fresh check.
func (w *Watcher) Report(ctx context.Context, domain string) (dnscheck.Report, bool) {
	return w.report(ctx, domain, w.opts.MaxAge)
}

func (w *Watcher) report(ctx context.Context, domain string, maxAge time.Duration) (dnscheck.Report, bool) {
	w.mu.Lock()
	lock := w.locks[domain]
	w.mu.Unlock()
	if lock == nil {
		return dnscheck.Report{}, false
	}
	lock.Lock() // a check running for another attempt finishes first
	defer lock.Unlock()
	w.mu.Lock()
	rep, ok := w.latest[domain]
	fresh := ok && !w.stale[domain] && w.opts.Now().Sub(rep.CheckedAt) <= maxAge
	w.mu.Unlock()
	if fresh {
		return rep, true
	}
	return w.check(ctx, domain).Report, true
}
