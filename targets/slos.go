package targets

import (
	"fmt"
	"time"
)

// SLO is a delivery objective, such as "99.5% of attempts in the inbox
// within 60 s over 28 days". It covers either a route (the attempts of
// whichever sender was active when they were made) or a sender, optionally
// narrowed to one provider. A good attempt reached the inbox within Latency.
type SLO struct {
	Name      string        `yaml:"name"`
	Route     string        `yaml:"route"`
	Sender    string        `yaml:"sender"`
	Provider  string        `yaml:"provider"`
	Objective float64       `yaml:"objective"` // percent of good attempts, e.g. 99.5
	Latency   time.Duration `yaml:"latency"`   // default 60s
	Window    time.Duration `yaml:"window"`    // default 672h (28 days)
}

// SLO defaults.
const (
	DefaultSLOLatency = 60 * time.Second
	DefaultSLOWindow  = 28 * 24 * time.Hour
)

// Target is the objective as a ratio, e.g. 0.995.
func (s SLO) Target() float64 { return s.Objective / 100 }

func (c *Config) checkSLO(i int, senders, seen map[string]int) error {
	s := &c.SLOs[i]
	p := item("slos", i, s.Name)
	if err := checkName(p, "slos", s.Name, seen, i); err != nil {
		return err
	}
	switch {
	case s.Route == "" && s.Sender == "":
		return errorf(p, "set route or sender: what the objective covers")
	case s.Route != "" && s.Sender != "":
		return errorf(field(p, "sender"), "set either route or sender, not both")
	case s.Route != "" && s.Provider != "":
		return errorf(field(p, "provider"), "narrows a sender's objective; a route's covers all providers")
	}
	if s.Route != "" {
		if _, ok := c.Route(s.Route); !ok {
			return errorf(field(p, "route"), "unknown route %q", s.Route)
		}
	}
	if s.Sender != "" {
		if _, ok := senders[s.Sender]; !ok {
			return errorf(field(p, "sender"), "unknown sender %q", s.Sender)
		}
	}
	if s.Provider != "" && !c.hasProvider(s.Provider) {
		return errorf(field(p, "provider"), "no mailbox has provider %q", s.Provider)
	}
	if s.Latency == 0 {
		s.Latency = DefaultSLOLatency
	}
	if s.Window == 0 {
		s.Window = DefaultSLOWindow
	}
	switch {
	case s.Objective <= 0 || s.Objective >= 100:
		return errorf(field(p, "objective"), "must be a percentage above 0 and below 100, like 99.5, got %v", s.Objective)
	case s.Latency < 0:
		return errorf(field(p, "latency"), "must be positive, got %v", s.Latency)
	case s.Window < 6*time.Hour:
		// The slowest burn-rate alert looks at 6 hours.
		return errorf(field(p, "window"), "must be at least 6h, got %v", s.Window)
	}
	return nil
}

func (c *Config) hasProvider(name string) bool {
	for _, m := range c.Mailboxes {
		if m.Provider == name || providerKey(m) == name {
			return true
		}
	}
	return false
}

// String describes the objective in words.
func (s SLO) String() string {
	scope := "route " + s.Route
	if s.Sender != "" {
		scope = "sender " + s.Sender
		if s.Provider != "" {
			scope += " to " + s.Provider
		}
	}
	return fmt.Sprintf("%s: %g%% of attempts of %s in the inbox within %v over %v", s.Name, s.Objective, scope, s.Latency, s.Window)
}
