package dnscheck

import (
	"fmt"
	"net"
	"strings"

	"github.com/miekg/dns"
)

// checkMX checks where mail to the domain goes: bounces of our canaries and
// DMARC reports arrive there.
func (c *check) checkMX() {
	name := c.domain
	display := strings.TrimSuffix(name, ".")
	a := c.rd.query(c.ctx, name, dns.TypeMX)
	switch a.out {
	case tempfail, otherErr:
		c.add(SeverityError, "mx.tempfail", name, a.status(),
			fmt.Sprintf("The MX records of %s cannot be read (%s): bounces and reports to it are delayed.", display, a.status()))
		return
	case nxdomain:
		c.add(SeverityCritical, "mx.nxdomain", name, a.status(),
			fmt.Sprintf("%s does not exist in DNS: receivers reject mail claiming to come from it.", display))
		return
	case nodata:
		c.add(SeverityWarning, "mx.missing", name, a.status(),
			fmt.Sprintf("%s has no MX record: bounces and DMARC reports depend on its address records, and some receivers reject senders without one.", display))
		return
	}
	var mxs []*dns.MX
	for _, rr := range a.rrs {
		if mx, ok := rr.(*dns.MX); ok {
			mxs = append(mxs, mx)
		}
	}
	for _, mx := range mxs {
		if mx.Mx == "." {
			if len(mxs) > 1 {
				c.add(SeverityError, "mx.null_mixed", name, strings.Join(a.rrset.Data, " | "),
					"A null MX must be the only MX record (RFC 7505); mixed with others it confuses receivers.")
			} else {
				c.add(SeverityWarning, "mx.null", name, "0 .",
					fmt.Sprintf("%s publishes a null MX: it accepts no mail, so bounces of our canaries and DMARC reports to it are lost.", display))
			}
			return
		}
	}
	for _, mx := range mxs {
		host := dns.CanonicalName(mx.Mx)
		if net.ParseIP(strings.TrimSuffix(host, ".")) != nil {
			c.add(SeverityError, "mx.ip_literal", name, mx.Mx, "An MX record names an IP address instead of a host name; receivers do not use it.")
			continue
		}
		c.mxHosts = append(c.mxHosts, host)
		a4 := c.rd.query(c.ctx, host, dns.TypeA)
		a6 := c.rd.query(c.ctx, host, dns.TypeAAAA)
		switch {
		case a4.out == found || a6.out == found:
			if len(a4.rrset.CNAMEs)+len(a6.rrset.CNAMEs) > 0 {
				c.add(SeverityWarning, "mx.cname", host, strings.Join(append(a4.rrset.CNAMEs, a6.rrset.CNAMEs...), " "),
					fmt.Sprintf("The MX host %s is a CNAME, which RFC 2181 forbids; some senders refuse it.", strings.TrimSuffix(host, ".")))
			}
		case a4.out == tempfail || a6.out == tempfail:
			c.add(SeverityWarning, "mx.host_tempfail", host, a4.status()+"/"+a6.status(),
				fmt.Sprintf("The address of MX host %s cannot be read right now.", strings.TrimSuffix(host, ".")))
		default:
			c.add(SeverityError, "mx.host_unresolvable", host, a4.status()+"/"+a6.status(),
				fmt.Sprintf("The MX host %s has no address: mail to %s cannot be delivered there.", strings.TrimSuffix(host, "."), display))
		}
	}
}
