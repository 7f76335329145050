package probe

import "github.com/otpprobe/otpprobe/targets"

// Lookups by name in a validated config (names are unique there).

func findProbe(c *targets.Config, name string) (targets.Probe, bool) {
	for _, p := range c.Probes {
		if p.Name == name {
			return p, true
		}
	}
	return targets.Probe{}, false
}

func findSender(c *targets.Config, name string) (targets.Sender, bool) {
	for _, s := range c.Senders {
		if s.Name == name {
			return s, true
		}
	}
	return targets.Sender{}, false
}

func findMailbox(c *targets.Config, name string) (targets.Mailbox, bool) {
	for _, m := range c.Mailboxes {
		if m.Name == name {
			return m, true
		}
	}
	return targets.Mailbox{}, false
}
