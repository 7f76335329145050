// Package objective holds the delivery objectives (SLOs) of the
// configuration as plain values. It is its own package so that the SLO
// evaluator (reports/slo) reads them without importing the config loader
// and, through it, the schedule parser.
package objective

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

// Defaults.
const (
	DefaultLatency = 60 * time.Second
	DefaultWindow  = 28 * 24 * time.Hour
)

// Target is the objective as a ratio, e.g. 0.995.
func (s SLO) Target() float64 { return s.Objective / 100 }

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
