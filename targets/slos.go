package targets

import (
	"time"

	"github.com/otpprobe/otpprobe/targets/objective"
)

// SLO is a delivery objective (see package objective).
type SLO = objective.SLO

// SLO defaults.
const (
	DefaultSLOLatency = objective.DefaultLatency
	DefaultSLOWindow  = objective.DefaultWindow
)

// Objectives are the configured SLOs (reports/slo reads them).
func (c *Config) Objectives() []objective.SLO { return c.SLOs }

// Primary is the primary sender of route, "" for an unknown route.
func (c *Config) Primary(route string) string {
	if r, ok := c.Route(route); ok {
		return r.Primary
	}
	return ""
}

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
