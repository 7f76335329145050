package targets

import (
	"fmt"
	"path/filepath"
	"time"
)

// Route is a path OTP mail takes, with a primary sender and backups to fail
// over to. The OTP application asks otpprobe which sender is active
// (GET /api/v1/routes/{name}). Thresholds count probe rounds: one round is
// one run of a probe, an attempt per sender × mailbox.
type Route struct {
	Name    string   `yaml:"name"`
	Primary string   `yaml:"primary"`
	Backups []string `yaml:"backups"`
	// Probe limits the rounds that count to one probe's; default every
	// probe that sends through the route's senders.
	Probe string `yaml:"probe"`
	// UnhealthyProviders (K): a round of a sender is unhealthy when at least
	// this many providers did not get the canary in the inbox in time.
	// Default 2 (1 when the probe reaches a single provider).
	UnhealthyProviders int `yaml:"unhealthy_providers"`
	// UnhealthyRounds (N): consecutive unhealthy rounds of the primary
	// before failing over. Default 3: a single lost message never triggers.
	UnhealthyRounds int `yaml:"unhealthy_rounds"`
	// HealthyRounds (M): consecutive healthy rounds of the primary before
	// failing back. Default 5.
	HealthyRounds int `yaml:"healthy_rounds"`
	// Quorum (agents sharing a PostgreSQL store): a sender's interval
	// counts as unhealthy only when at least this many of the agents that
	// reported a round of it in that interval saw it unhealthy. Default 0:
	// a majority of those agents. Capped at the number that reported, so
	// a lone surviving agent still decides.
	Quorum int `yaml:"quorum"`
	// MinHold is the least time on a backup before failing back. Default 10m.
	MinHold time.Duration `yaml:"min_hold"`
	// FailOverOnFastBurn also fails over when an SLO of the route burns its
	// error budget at the fast-burn rate (1 h and 5 m windows ≥ 14.4×).
	// Off by default: a 10% loss already burns a 99.5% objective that fast,
	// and a lossy primary is not a reason to switch by itself.
	FailOverOnFastBurn bool `yaml:"fail_over_on_fast_burn"`
	// Webhooks names alerts.webhooks entries told about every transition.
	Webhooks []string `yaml:"webhooks"`
	// Exec runs a command with the decision as JSON on stdin on every
	// transition.
	Exec *Exec `yaml:"exec"`
}

// Exec is a command run on a route transition. Command is an argv (no
// shell); it runs in the config's directory.
type Exec struct {
	Command []string      `yaml:"command"`
	Timeout time.Duration `yaml:"timeout"` // default 10s

	dir string
}

// Dir is the directory the command runs in: the config's.
func (e Exec) Dir() string { return e.dir }

// Route defaults.
const (
	DefaultUnhealthyProviders = 2
	DefaultUnhealthyRounds    = 3
	DefaultHealthyRounds      = 5
	DefaultMinHold            = 10 * time.Minute
	DefaultExecTimeout        = 10 * time.Second
)

// Route returns the route named name.
func (c *Config) Route(name string) (*Route, bool) {
	for i := range c.Routes {
		if c.Routes[i].Name == name {
			return &c.Routes[i], true
		}
	}
	return nil, false
}

// Senders is the primary followed by the backups.
func (r Route) Senders() []string { return append([]string{r.Primary}, r.Backups...) }

// checkReporting applies defaults to and validates routes, SLOs and
// alerts; dir is the config's directory for *_file references.
func (c *Config) checkReporting(dir string) error {
	senders := map[string]int{}
	for i, s := range c.Senders {
		senders[s.Name] = i
	}
	if err := c.HTTP.check(dir); err != nil {
		return err
	}
	if err := c.Alerts.check(dir); err != nil {
		return err
	}
	webhooks := map[string]bool{}
	for _, w := range c.Alerts.Webhooks {
		webhooks[w.Name] = true
	}
	routes := map[string]int{}
	for i := range c.Routes {
		if err := c.checkRoute(i, senders, routes, webhooks, dir); err != nil {
			return err
		}
	}
	slos := map[string]int{}
	for i := range c.SLOs {
		if err := c.checkSLO(i, senders, slos); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) checkRoute(i int, senders, seen map[string]int, webhooks map[string]bool, dir string) error {
	r := &c.Routes[i]
	p := item("routes", i, r.Name)
	if err := checkName(p, "routes", r.Name, seen, i); err != nil {
		return err
	}
	if r.Primary == "" {
		return errorf(field(p, "primary"), "required: the sender OTP mail normally leaves through")
	}
	if _, ok := senders[r.Primary]; !ok {
		return errorf(field(p, "primary"), "unknown sender %q", r.Primary)
	}
	if len(r.Backups) == 0 {
		return errorf(field(p, "backups"), "at least one backup sender is required to fail over to")
	}
	for j, b := range r.Backups {
		bp := fmt.Sprintf("%s.backups[%d]", p, j)
		if _, ok := senders[b]; !ok {
			return errorf(bp, "unknown sender %q", b)
		}
		if b == r.Primary {
			return errorf(bp, "%q is the primary; a backup must be another sender", b)
		}
		for _, prev := range r.Backups[:j] {
			if prev == b {
				return errorf(bp, "sender %q listed twice", b)
			}
		}
	}
	if r.Probe != "" {
		if _, ok := findProbeConfig(c, r.Probe); !ok {
			return errorf(field(p, "probe"), "unknown probe %q", r.Probe)
		}
	}
	// Every sender of the route must be probed, or its health is unknown.
	for _, s := range r.Senders() {
		if !c.probed(r.Probe, s) {
			if r.Probe != "" {
				return errorf(field(p, "probe"), "probe %q does not send through %q; the route needs its health", r.Probe, s)
			}
			return errorf(p, "no probe sends through %q; the route needs its health", s)
		}
	}
	providers := c.routeProviders(*r)
	if r.UnhealthyProviders == 0 {
		r.UnhealthyProviders = min(DefaultUnhealthyProviders, providers)
	}
	if r.UnhealthyRounds == 0 {
		r.UnhealthyRounds = DefaultUnhealthyRounds
	}
	if r.HealthyRounds == 0 {
		r.HealthyRounds = DefaultHealthyRounds
	}
	if r.MinHold == 0 {
		r.MinHold = DefaultMinHold
	}
	switch {
	case r.UnhealthyProviders < 1 || r.UnhealthyProviders > providers:
		return errorf(field(p, "unhealthy_providers"), "must be 1-%d (the providers its probes reach), got %d", providers, r.UnhealthyProviders)
	case r.UnhealthyRounds < 1 || r.UnhealthyRounds > 1000:
		return errorf(field(p, "unhealthy_rounds"), "must be 1-1000, got %d", r.UnhealthyRounds)
	case r.HealthyRounds < 1 || r.HealthyRounds > 1000:
		return errorf(field(p, "healthy_rounds"), "must be 1-1000, got %d", r.HealthyRounds)
	case r.MinHold < 0:
		return errorf(field(p, "min_hold"), "must not be negative, got %v", r.MinHold)
	case r.Quorum < 0 || r.Quorum > 100:
		return errorf(field(p, "quorum"), "must be 1-100 agents (0 or unset: a majority of the agents that reported), got %d", r.Quorum)
	case r.Quorum > 1 && c.Store.Driver != "postgres":
		return errorf(field(p, "quorum"), "counts agents sharing a PostgreSQL store; with store.driver %s there is one agent, got %d", c.Store.Driver, r.Quorum)
	}
	for j, w := range r.Webhooks {
		if !webhooks[w] {
			return errorf(fmt.Sprintf("%s.webhooks[%d]", p, j), "unknown webhook %q (alerts.webhooks names them)", w)
		}
	}
	if e := r.Exec; e != nil {
		var err error
		if e.dir, err = filepath.Abs(dir); err != nil {
			return errorf(field(p, "exec"), "%v", err)
		}
		if e.Timeout == 0 {
			e.Timeout = DefaultExecTimeout
		}
		switch {
		case len(e.Command) == 0 || e.Command[0] == "":
			return errorf(field(p, "exec.command"), "required: the program and its arguments, e.g. [/usr/local/bin/switch-sender]")
		case e.Timeout < 0:
			return errorf(field(p, "exec.timeout"), "must be positive, got %v", e.Timeout)
		}
	}
	return nil
}

// RoundInterval is how often the route's senders are probed: the shortest
// interval of the probes whose rounds count for it (a schedule's gap
// between its next two runs). Agents sharing a store count one interval's
// rounds together.
func (c *Config) RoundInterval(r Route, now time.Time) time.Duration {
	var out time.Duration
	for _, p := range c.Probes {
		if (r.Probe != "" && p.Name != r.Probe) || !c.probed(p.Name, r.Primary) {
			continue
		}
		sched, err := p.CronSchedule()
		if err != nil {
			continue
		}
		next := sched.Next(now)
		if d := sched.Next(next).Sub(next); d > 0 && (out == 0 || d < out) {
			out = d
		}
	}
	if out == 0 {
		out = time.Minute
	}
	return out
}

// probed reports whether sender is probed by probe name ("" for any).
func (c *Config) probed(name, sender string) bool {
	for _, p := range c.Probes {
		if name != "" && p.Name != name {
			continue
		}
		for _, s := range p.Senders {
			if s == sender {
				return true
			}
		}
	}
	return false
}

// routeProviders counts the distinct providers the route's probes reach.
func (c *Config) routeProviders(r Route) int {
	seen := map[string]bool{}
	for _, p := range c.Probes {
		if r.Probe != "" && p.Name != r.Probe {
			continue
		}
		if !c.probed(p.Name, r.Primary) {
			continue
		}
		for _, name := range p.Mailboxes {
			if m, ok := c.Mailbox(name); ok {
				seen[providerKey(*m)] = true
			}
		}
	}
	return max(len(seen), 1)
}

// providerKey is the provider of a mailbox, or its name for generic ones.
func providerKey(m Mailbox) string {
	if m.Provider == "" || m.Provider == "generic" {
		return m.Name
	}
	return m.Provider
}

func findProbeConfig(c *Config, name string) (*Probe, bool) {
	for i := range c.Probes {
		if c.Probes[i].Name == name {
			return &c.Probes[i], true
		}
	}
	return nil, false
}
