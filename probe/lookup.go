package probe

import "github.com/otpprobe/otpprobe/targets"

// findProbe looks a probe up by name (names are unique in a valid config).

func findProbe(c *targets.Config, name string) (targets.Probe, bool) {
	for _, p := range c.Probes {
		if p.Name == name {
			return p, true
		}
	}
	return targets.Probe{}, false
}
