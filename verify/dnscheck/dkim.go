package dnscheck

import (
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"

	"github.com/miekg/dns"
)

// Key sizes (RFC 8301: verifiers must reject RSA keys under 1024 bits).
const (
	dkimMinBits  = 1024
	dkimGoodBits = 2048
)

// m365Target matches where Microsoft 365 points a custom domain's selector:
// selector1-<domain-with-dashes>._domainkey.<tenant>.onmicrosoft.<tld>.
var m365Target = regexp.MustCompile(`^(selector[12])-[a-z0-9-]+\._domainkey\.[a-z0-9-]+\.onmicrosoft\.[a-z]+\.$`)

// selectorState is what one selector's lookup found.
type selectorState struct {
	sel    Selector
	name   string
	a      answer
	m365   bool // CNAME-delegated to a Microsoft 365 tenant
	hasKey bool // a TXT record exists at the end of the chain
}

func (c *check) checkDKIM(d Domain) {
	if len(d.Selectors) == 0 {
		c.add(SeverityNote, "dkim.unchecked", c.domain, "",
			"No DKIM selector is configured or was seen signing our mail, so DKIM keys were not checked.")
		return
	}
	var states []*selectorState
	seen := map[string]bool{}
	for _, sel := range d.Selectors {
		key := strings.ToLower(sel.Name)
		if seen[key] {
			continue
		}
		seen[key] = true
		name := dns.CanonicalName(sel.Name + "._domainkey." + c.domain)
		if _, ok := dns.IsDomainName(name); !ok || sel.Name == "" {
			c.add(SeverityError, "dkim.selector_invalid", name, sel.Name, "The DKIM selector is not a valid DNS label.")
			continue
		}
		a := c.rd.query(c.ctx, name, dns.TypeTXT)
		st := &selectorState{sel: sel, name: name, a: a, hasKey: a.out == found}
		if len(a.rrset.CNAMEs) > 0 {
			st.m365 = m365Target.MatchString(dns.CanonicalName(a.rrset.CNAMEs[0]))
		}
		states = append(states, st)
	}
	// Microsoft 365 publishes only the active selector's key: a delegated
	// selector without one is expected while a sibling is the active one
	// (known to be, or holding a key).
	siblingActive := func(st *selectorState) bool {
		for _, o := range states {
			// The sibling's own CNAME may be the broken part, so the
			// Microsoft selector names count too.
			m365 := o.m365 || strings.EqualFold(o.sel.Name, "selector1") || strings.EqualFold(o.sel.Name, "selector2")
			if o != st && m365 && (o.hasKey || o.sel.Active) {
				return true
			}
		}
		return false
	}
	for _, st := range states {
		c.checkSelector(st, st.m365 && !st.sel.Active && siblingActive(st))
	}
}

// checkSelector reports on one selector; inactiveM365 marks a Microsoft 365
// selector that is expected to have no key.
func (c *check) checkSelector(st *selectorState, inactiveM365 bool) {
	a, name := st.a, st.name
	chain := ""
	if len(a.rrset.CNAMEs) > 0 {
		chain = " (CNAME to " + strings.TrimSuffix(a.rrset.CNAMEs[len(a.rrset.CNAMEs)-1], ".") + ")"
	}
	sev := SeverityError // configured but not known to be signing
	if st.sel.Active || st.m365 {
		sev = SeverityCritical
	}
	display := strings.TrimSuffix(name, ".")
	switch a.out {
	case tempfail, otherErr:
		c.add(sev, "dkim.tempfail", name, a.status(),
			fmt.Sprintf("The DKIM key %s%s %s: receivers return temperror for signatures with this selector.", display, chain, describe(a)))
		return
	case nxdomain, nodata:
		data := a.status()
		if chain != "" {
			data = strings.Join(a.rrset.CNAMEs, " -> ") + " " + a.status()
		}
		if inactiveM365 {
			c.add(SeverityNote, "dkim.m365_inactive_selector", name, data,
				fmt.Sprintf("Microsoft 365 selector %s%s has no key because it is not the active selector; this is expected until keys rotate.", st.sel.Name, chain))
			return
		}
		code, what := "dkim.key_missing", display+" has no DKIM key record"
		if chain != "" {
			code = "dkim.cname_dangling"
			what = display + " is a CNAME to " + strings.TrimSuffix(a.rrset.CNAMEs[len(a.rrset.CNAMEs)-1], ".") + ", which has no TXT record"
		}
		c.add(sev, code, name, data, what+": mail signed with this selector fails DKIM (no key for signature).")
		return
	}
	txts := a.txts()
	if len(txts) > 1 {
		c.add(sev, "dkim.multiple_records", name, strings.Join(txts, " | "),
			fmt.Sprintf("The DKIM key %s%s has %d TXT records; verifiers reject the signature.", display, chain, len(txts)))
		return
	}
	c.checkKey(name, display+chain, txts[0], sev)
}

// checkKey validates a DKIM key record (RFC 6376 §3.6.1).
func (c *check) checkKey(name, display, rec string, sev Severity) {
	tags, err := parseTags(rec)
	if err != nil {
		c.add(sev, "dkim.syntax", name, rec, fmt.Sprintf("The DKIM key %s is not a valid tag list: %v.", display, err))
		return
	}
	if v, ok := tags["v"]; ok && v != "DKIM1" {
		c.add(sev, "dkim.version", name, "v="+v, fmt.Sprintf("The DKIM key %s has v=%s; only DKIM1 is valid.", display, v))
		return
	}
	p, ok := tags["p"]
	if !ok {
		c.add(sev, "dkim.syntax", name, rec, fmt.Sprintf("The DKIM key %s has no p= tag.", display))
		return
	}
	p = strings.Join(strings.Fields(p), "")
	if p == "" {
		c.add(sev, "dkim.key_revoked", name, rec, fmt.Sprintf("The DKIM key %s is revoked (empty p=): its signatures fail.", display))
		return
	}
	der, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		c.add(sev, "dkim.key_invalid", name, "p="+abbreviate(p), fmt.Sprintf("The DKIM key %s is not valid base64.", display))
		return
	}
	switch k := strings.ToLower(tags["k"]); k {
	case "", "rsa":
		bits, err := rsaBits(der)
		if err != nil {
			c.add(sev, "dkim.key_invalid", name, "p="+abbreviate(p), fmt.Sprintf("The DKIM key %s is not an RSA public key: %v.", display, err))
			return
		}
		switch {
		case bits < dkimMinBits:
			c.add(sev, "dkim.key_weak", name, fmt.Sprintf("rsa %d bits", bits),
				fmt.Sprintf("The DKIM key %s has %d bits; verifiers reject RSA keys under %d bits.", display, bits, dkimMinBits))
		case bits < dkimGoodBits:
			c.add(SeverityWarning, "dkim.key_short", name, fmt.Sprintf("rsa %d bits", bits),
				fmt.Sprintf("The DKIM key %s has %d bits; %d is the current minimum recommendation.", display, bits, dkimGoodBits))
		}
	case "ed25519":
		if len(der) != ed25519.PublicKeySize {
			c.add(sev, "dkim.key_invalid", name, "p="+abbreviate(p), fmt.Sprintf("The DKIM key %s is not a %d-byte Ed25519 key.", display, ed25519.PublicKeySize))
		}
	default:
		c.add(sev, "dkim.key_invalid", name, "k="+k, fmt.Sprintf("The DKIM key %s has unknown key type k=%s.", display, k))
		return
	}
	for _, flag := range strings.Split(tags["t"], ":") {
		if strings.TrimSpace(flag) == "y" {
			c.add(SeverityWarning, "dkim.testing", name, "t="+tags["t"],
				fmt.Sprintf("The DKIM key %s is in test mode (t=y): some receivers treat its signatures as unsigned.", display))
		}
	}
}

// rsaBits returns the modulus size of a DER public key (SubjectPublicKeyInfo,
// or PKCS#1 as some signers publish).
func rsaBits(der []byte) (int, error) {
	if pub, err := x509.ParsePKIXPublicKey(der); err == nil {
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return 0, fmt.Errorf("key is %T", pub)
		}
		return k.N.BitLen(), nil
	}
	k, err := x509.ParsePKCS1PublicKey(der)
	if err != nil {
		return 0, fmt.Errorf("unparsable DER")
	}
	return k.N.BitLen(), nil
}

// parseTags parses a DKIM/DMARC tag=value list; tag names are case-sensitive
// in DKIM, so they are kept as written.
func parseTags(s string) (map[string]string, error) {
	tags := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not tag=value", part)
		}
		if _, dup := tags[k]; dup {
			return nil, fmt.Errorf("tag %s appears twice", k)
		}
		tags[k] = strings.TrimSpace(v)
	}
	return tags, nil
}

func abbreviate(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}
