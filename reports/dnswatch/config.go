package dnswatch

import (
	"strings"

	"github.com/otpprobe/otpprobe/targets"
	"github.com/otpprobe/otpprobe/verify/dnscheck"
)

// domainsFromConfig returns one Domain per header-From domain of the
// config's senders, in first-seen order, each with the senders using it
// for the DMARC alignment check. A sender's DKIM domain is taken to be its
// From domain, which is how Microsoft 365 custom-domain signing and our
// relays sign; replace it with the d= seen on canaries when known. Senders
// with the m365 preset add Microsoft's selector1/selector2 pair (which one
// is active is learned from canaries: AddSelector).
func domainsFromConfig(cfg *targets.Config) []dnscheck.Domain {
	var out []dnscheck.Domain
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
			out = append(out, dnscheck.Domain{Name: from})
		}
		d := &out[i]
		env := s.EnvelopeFrom
		if env == "" {
			env = from // MAIL FROM defaults to From
		}
		d.Senders = append(d.Senders, dnscheck.Sender{Name: s.Name, EnvelopeFrom: env, DKIMDomain: from})
		if s.Preset == targets.PresetM365 {
			d.AddSelector("selector1", false)
			d.AddSelector("selector2", false)
		}
	}
	return out
}
