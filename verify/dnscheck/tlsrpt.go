package dnscheck

import (
	"strings"

	"github.com/miekg/dns"
)

// checkTLSRPT checks the TLS reporting record (RFC 8460); without one
// nobody hears about TLS failures MTA-STS or DANE cause.
func (c *check) checkTLSRPT(wanted bool) {
	name := "_smtp._tls." + c.domain
	a := c.rd.query(c.ctx, name, dns.TypeTXT)
	var recs []string
	for _, t := range a.txts() {
		if strings.HasPrefix(t, "v=TLSRPTv1") {
			recs = append(recs, t)
		}
	}
	switch {
	case len(recs) == 0 && wanted && a.out != tempfail:
		c.add(SeverityNote, "tlsrpt.missing", name, a.status(),
			"The domain uses MTA-STS or DANE but publishes no TLS-RPT record, so nobody is told when senders fail TLS to it.")
	case len(recs) > 1:
		c.add(SeverityWarning, "tlsrpt.multiple", name, strings.Join(recs, " | "),
			"The domain has several TLS-RPT records, so senders send no TLS reports.")
	case len(recs) == 1:
		tags, err := parseTags(recs[0])
		ok := err == nil && tags["rua"] != ""
		for _, u := range strings.Split(tags["rua"], ",") {
			u = strings.TrimSpace(u)
			if !strings.HasPrefix(u, "mailto:") && !strings.HasPrefix(u, "https:") {
				ok = false
			}
		}
		if !ok {
			c.add(SeverityWarning, "tlsrpt.syntax", name, recs[0],
				"The TLS-RPT record needs rua= with mailto: or https: addresses; senders ignore it as written.")
		}
	}
}
