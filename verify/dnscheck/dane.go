package dnscheck

import (
	"crypto/x509"
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// checkDANE checks the TLSA records of every MX host (RFC 7672): they count
// only when DNSSEC-authenticated, and must match the certificate the host
// presents, or DANE senders refuse to deliver. It reports whether any MX
// publishes TLSA.
func (c *check) checkDANE() bool {
	published := false
	for _, host := range c.mxHosts {
		name, err := dns.TLSAName(host, "25", "tcp")
		if err != nil {
			continue
		}
		a := c.rd.query(c.ctx, name, dns.TypeTLSA)
		display := strings.TrimSuffix(host, ".")
		switch a.out {
		case nxdomain, nodata:
			continue
		case tempfail, otherErr:
			c.add(SeverityError, "dane.tempfail", name, a.status(),
				fmt.Sprintf("The TLSA records of MX host %s cannot be read (%s): DANE senders defer mail to it.", display, a.status()))
			continue
		}
		published = true
		var tlsa []*dns.TLSA
		for _, rr := range a.rrs {
			if t, ok := rr.(*dns.TLSA); ok {
				tlsa = append(tlsa, t)
			}
		}
		switch {
		case !c.r.DNSSEC():
			c.add(SeverityNote, "dane.unverified", name, strings.Join(a.rrset.Data, " | "),
				fmt.Sprintf("MX host %s publishes TLSA records, but this check ran without DNSSEC, so their authentication was not verified.", display))
		case !a.rrset.AD:
			c.add(SeverityError, "dane.unauthenticated", name, strings.Join(a.rrset.Data, " | "),
				fmt.Sprintf("The TLSA records of MX host %s are not DNSSEC-authenticated (no AD bit), so DANE senders ignore them.", display))
		}
		for _, t := range tlsa {
			if t.Usage == 0 || t.Usage == 1 {
				c.add(SeverityWarning, "dane.pkix_usage", name, t.String(),
					fmt.Sprintf("A TLSA record of MX host %s uses PKIX usage %d, which SMTP DANE senders treat as unusable (RFC 7672).", display, t.Usage))
			}
		}
		if c.ck.MXCertificates == nil {
			continue
		}
		chain, err := c.ck.MXCertificates(c.ctx, host)
		if err != nil || len(chain) == 0 {
			c.add(SeverityWarning, "dane.cert_unavailable", host, fmt.Sprint(err),
				fmt.Sprintf("The certificate of MX host %s could not be fetched to match its TLSA records.", display))
			continue
		}
		if !tlsaMatch(tlsa, chain) {
			c.add(SeverityCritical, "dane.mismatch", name, strings.Join(a.rrset.Data, " | "),
				fmt.Sprintf("No TLSA record of MX host %s matches the certificate it presents, so DANE senders refuse to deliver to it.", display))
		}
	}
	return published
}

// tlsaMatch reports whether a usable TLSA record matches the chain: DANE-EE
// (3) the leaf, DANE-TA (2) a certificate above it.
func tlsaMatch(tlsa []*dns.TLSA, chain []*x509.Certificate) bool {
	for _, t := range tlsa {
		var certs []*x509.Certificate
		switch t.Usage {
		case 3:
			certs = chain[:1]
		case 2:
			certs = chain[1:]
		default:
			continue
		}
		for _, cert := range certs {
			want, err := dns.CertificateToDANE(t.Selector, t.MatchingType, cert)
			if err == nil && strings.EqualFold(want, t.Certificate) {
				return true
			}
		}
	}
	return false
}
