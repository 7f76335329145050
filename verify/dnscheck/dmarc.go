package dnscheck

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/emersion/go-msgauth/dmarc"
	"github.com/miekg/dns"
	"golang.org/x/net/publicsuffix"
)

// orgDomain is the organizational domain (RFC 7489 §3.2) of a fully
// qualified name, fully qualified; a public suffix is its own.
func orgDomain(name string) string {
	d := strings.TrimSuffix(strings.ToLower(name), ".")
	org, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return dns.Fqdn(d)
	}
	return dns.Fqdn(org)
}

// dmarcCaseInsensitive are the tags whose values are keywords: RFC 7489's
// ABNF literals are case-insensitive, go-msgauth's parser is not.
var dmarcCaseInsensitive = map[string]bool{"p": true, "sp": true, "adkim": true, "aspf": true, "fo": true, "rf": true}

// parseDMARC parses a record as receivers read it.
func parseDMARC(txt string) (*dmarc.Record, error) {
	tags, err := parseTags(txt)
	if err != nil {
		return nil, err
	}
	first, _, _ := strings.Cut(strings.TrimSpace(txt), "=")
	if strings.ToLower(strings.TrimSpace(first)) != "v" {
		return nil, fmt.Errorf("v=DMARC1 must be the first tag")
	}
	var b strings.Builder
	for k, v := range tags {
		k = strings.ToLower(k)
		switch {
		case k == "v":
			v = strings.ToUpper(v)
		case dmarcCaseInsensitive[k]:
			v = strings.ToLower(v)
		}
		fmt.Fprintf(&b, "%s=%s;", k, v)
	}
	rec, err := dmarc.Parse(b.String())
	if err != nil {
		return nil, fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "dmarc: "))
	}
	return rec, nil
}

// dmarcLookup reads the DMARC record at name. done is false when the lookup
// failed (a finding was added) and checking must stop.
func (c *check) dmarcLookup(name string) (txt string, a answer, done bool) {
	a = c.rd.query(c.ctx, name, dns.TypeTXT)
	switch a.out {
	case tempfail, otherErr:
		c.add(SeverityCritical, "dmarc.tempfail", name, a.status(),
			fmt.Sprintf("The DMARC record %s %s: receivers return temperror and may defer or junk mail.", strings.TrimSuffix(name, "."), describe(a)))
		return "", a, false
	case nxdomain, nodata:
		return "", a, true
	}
	var recs []string
	for _, t := range a.txts() {
		if v, _, _ := strings.Cut(t, ";"); strings.EqualFold(strings.ReplaceAll(v, " ", ""), "v=DMARC1") {
			recs = append(recs, t)
		}
	}
	if len(recs) > 1 {
		c.add(SeverityCritical, "dmarc.multiple", name, strings.Join(recs, " | "),
			fmt.Sprintf("%s has %d DMARC records; receivers then apply no DMARC policy at all.", strings.TrimSuffix(name, "."), len(recs)))
		return "", a, false
	}
	if len(recs) == 1 {
		return recs[0], a, true
	}
	return "", a, true
}

func (c *check) checkDMARC(d Domain) {
	name := "_dmarc." + c.domain
	org := orgDomain(c.domain)
	txt, a, ok := c.dmarcLookup(name)
	if !ok {
		return
	}
	policyDomain, fallback := c.domain, false
	if txt == "" && org != c.domain {
		var orgOK bool
		txt, _, orgOK = c.dmarcLookup("_dmarc." + org)
		if !orgOK {
			return
		}
		policyDomain, fallback = org, txt != ""
	}
	if txt == "" {
		data := a.status()
		if a.out == found {
			data = strings.Join(a.txts(), " | ")
		}
		c.add(SeverityCritical, "dmarc.missing", name, data,
			fmt.Sprintf("%s %s: there is no DMARC policy, and Gmail and Yahoo require one from senders.",
				strings.TrimSuffix(name, "."), map[bool]string{true: "has no v=DMARC1 record", false: describe(a)}[a.out == found]))
		return
	}
	recName := "_dmarc." + policyDomain
	if fallback {
		c.add(SeverityNote, "dmarc.org_fallback", recName, txt,
			fmt.Sprintf("%s has no DMARC record of its own; receivers apply the organizational domain's record at %s.",
				strings.TrimSuffix(c.domain, "."), strings.TrimSuffix(recName, ".")))
	}
	rec, err := parseDMARC(txt)
	if err != nil {
		c.add(SeverityCritical, "dmarc.syntax", recName, txt,
			fmt.Sprintf("The DMARC record at %s is invalid (%v); receivers may ignore it.", strings.TrimSuffix(recName, "."), err))
		return
	}

	policy := rec.Policy
	if fallback && rec.SubdomainPolicy != "" {
		policy = rec.SubdomainPolicy
	}
	switch {
	case policy == dmarc.PolicyNone:
		c.add(SeverityWarning, "dmarc.policy_none", recName, "p=none",
			"DMARC policy none only monitors: mail forged in the domain's name, OTP phishing included, is still delivered.")
	case !fallback && rec.SubdomainPolicy == dmarc.PolicyNone:
		c.add(SeverityWarning, "dmarc.subdomain_none", recName, "sp=none",
			"DMARC sp=none leaves every subdomain open to forgery although the domain itself is protected.")
	}
	if rec.Percent != nil && *rec.Percent < 100 && policy != dmarc.PolicyNone {
		c.add(SeverityWarning, "dmarc.pct", recName, "pct="+strconv.Itoa(*rec.Percent),
			fmt.Sprintf("DMARC pct=%d applies the policy to only part of the failing mail.", *rec.Percent))
	}
	c.checkRUA(policyDomain, recName, rec)
	c.checkAlignment(d, rec)
}

// checkRUA checks the aggregate report destinations; one in another
// organization must authorise it (RFC 7489 §7.1).
func (c *check) checkRUA(policyDomain, recName string, rec *dmarc.Record) {
	if len(rec.ReportURIAggregate) == 0 {
		c.add(SeverityNote, "dmarc.no_rua", recName, "",
			"DMARC has no rua= address, so nobody receives the daily reports that show who sends as this domain.")
		return
	}
	for _, uri := range rec.ReportURIAggregate {
		addr, ok := strings.CutPrefix(strings.ToLower(strings.TrimSpace(uri)), "mailto:")
		if i := strings.IndexByte(addr, '!'); i >= 0 {
			addr = addr[:i]
		}
		_, host, hasAt := strings.Cut(addr, "@")
		if !ok || !hasAt || host == "" {
			c.add(SeverityWarning, "dmarc.rua_invalid", recName, uri,
				fmt.Sprintf("The DMARC report address %s is not a mailto: address; reports are not sent.", uri))
			continue
		}
		host = dns.Fqdn(host)
		if orgDomain(host) == orgDomain(policyDomain) {
			continue
		}
		authName := strings.TrimSuffix(policyDomain, ".") + "._report._dmarc." + host
		a := c.rd.query(c.ctx, authName, dns.TypeTXT)
		authorised := false
		for _, t := range a.txts() {
			if strings.HasPrefix(strings.ToUpper(strings.ReplaceAll(t, " ", "")), "V=DMARC1") {
				authorised = true
			}
		}
		if !authorised {
			c.add(SeverityWarning, "dmarc.rua_unauthorised", dns.Fqdn(authName), a.status(),
				fmt.Sprintf("The DMARC report address %s is in another domain that does not authorise it at %s, so reports are not sent there.", addr, strings.TrimSuffix(authName, ".")))
		}
	}
}

// checkAlignment checks that every configured sender can pass DMARC: its
// envelope (SPF) or DKIM domain must align with the header From domain.
func (c *check) checkAlignment(d Domain, rec *dmarc.Record) {
	aligned := func(other string, mode dmarc.AlignmentMode) bool {
		if other == "" {
			return false
		}
		other = dns.CanonicalName(other)
		if mode == dmarc.AlignmentStrict {
			return other == c.domain
		}
		return orgDomain(other) == orgDomain(c.domain)
	}
	for _, s := range d.Senders {
		env := s.EnvelopeFrom
		if _, dom, ok := strings.Cut(env, "@"); ok {
			env = dom
		}
		if aligned(env, rec.SPFAlignment) || aligned(s.DKIMDomain, rec.DKIMAlignment) {
			continue
		}
		sev := SeverityCritical
		if rec.Policy == dmarc.PolicyNone {
			sev = SeverityWarning
		}
		c.add(sev, "dmarc.sender_unaligned", "_dmarc."+c.domain,
			fmt.Sprintf("%s: envelope %s (aspf=%s), dkim d=%s (adkim=%s)", s.Name, env, rec.SPFAlignment, s.DKIMDomain, rec.DKIMAlignment),
			fmt.Sprintf("Sender %s can never pass DMARC for %s: neither its envelope domain nor its DKIM domain aligns with it.",
				s.Name, strings.TrimSuffix(c.domain, ".")))
	}
}
