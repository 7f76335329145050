package dnscheck

import (
	"net"
	"slices"
	"strings"

	"github.com/otpprobe/otpprobe/targets"
)

// DomainsFromConfig returns one Domain per header-From domain of the
// config's senders, in first-seen order, each with the senders using it
// for the DMARC alignment check. A sender's DKIM domain is taken to be its
// From domain, which is how Microsoft 365 custom-domain signing and our
// relays sign; replace it with the d= seen on canaries when known. Senders
// with the m365 preset add Microsoft's selector1/selector2 pair (which one
// is active is learned from canaries: AddSelector).
func DomainsFromConfig(cfg *targets.Config) []Domain {
	var out []Domain
	index := map[string]int{}
	for _, s := range cfg.Senders {
		from := strings.ToLower(s.Domain())
		if from == "" {
			continue
		}
		i, ok := index[from]
		if !ok {
			i = len(out)
			index[from] = i
			out = append(out, Domain{Name: from})
		}
		d := &out[i]
		env := s.EnvelopeFrom
		if env == "" {
			env = from // MAIL FROM defaults to From
		}
		d.Senders = append(d.Senders, Sender{Name: s.Name, EnvelopeFrom: env, DKIMDomain: from})
		if s.Preset == targets.PresetM365 {
			d.AddSelector("selector1", false)
			d.AddSelector("selector2", false)
		}
	}
	return out
}

// AddSelector adds a DKIM selector; active marks one seen signing our
// mail (s= of a canary's signature), which upgrades an existing entry.
func (d *Domain) AddSelector(name string, active bool) {
	for i := range d.Selectors {
		if strings.EqualFold(d.Selectors[i].Name, name) {
			d.Selectors[i].Active = d.Selectors[i].Active || active
			return
		}
	}
	d.Selectors = append(d.Selectors, Selector{Name: name, Active: active})
}

// AddSourceIP records an address that delivered our mail (from the
// receiver's headers), once.
func (d *Domain) AddSourceIP(ip net.IP) {
	if ip == nil || slices.ContainsFunc(d.SourceIPs, ip.Equal) {
		return
	}
	d.SourceIPs = append(d.SourceIPs, ip)
}
