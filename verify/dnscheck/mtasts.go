package dnscheck

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// RFC 8461 limits.
const (
	stsMaxPolicy = 64 << 10 // policy body size
	stsMaxAge    = 31557600 // one year
	stsMinAge    = 86400    // below a day the policy barely protects
)

// stsPolicy is a parsed MTA-STS policy (RFC 8461 §3.2).
type stsPolicy struct {
	mode   string
	maxAge int
	mx     []string
}

// checkMTASTS checks the MTA-STS TXT record and, with an HTTP client, the
// policy it announces. It returns the policy mode ("" when the domain has
// no usable MTA-STS).
func (c *check) checkMTASTS() string {
	name := "_mta-sts." + c.domain
	a := c.rd.query(c.ctx, name, dns.TypeTXT)
	switch a.out {
	case nxdomain, nodata:
		return ""
	case tempfail, otherErr:
		c.add(SeverityWarning, "mta_sts.tempfail", name, a.status(),
			fmt.Sprintf("The MTA-STS record %s %s: senders cannot refresh the policy.", strings.TrimSuffix(name, "."), describe(a)))
		return ""
	}
	var recs []string
	for _, t := range a.txts() {
		if strings.HasPrefix(t, "v=STSv1") {
			recs = append(recs, t)
		}
	}
	switch {
	case len(recs) == 0:
		return ""
	case len(recs) > 1:
		c.add(SeverityError, "mta_sts.multiple", name, strings.Join(recs, " | "),
			"The domain has several MTA-STS records, so senders ignore MTA-STS for it.")
		return ""
	}
	tags, err := parseTags(recs[0])
	if id := tags["id"]; err != nil || id == "" || len(id) > 32 || !isAlnum(id) {
		c.add(SeverityError, "mta_sts.syntax", name, recs[0],
			"The MTA-STS record needs an id= of 1 to 32 letters and digits; senders ignore it without one.")
		return ""
	}
	if c.ck.HTTPClient == nil {
		return "unknown"
	}
	policyURL := "https://mta-sts." + strings.TrimSuffix(c.domain, ".") + "/.well-known/mta-sts.txt"
	pol, err := c.fetchPolicy(policyURL)
	if err != nil {
		c.add(SeverityError, "mta_sts.policy_unavailable", "mta-sts."+c.domain, err.Error(),
			fmt.Sprintf("The MTA-STS policy at %s cannot be fetched (%v); senders fall back to a cached or no policy.", policyURL, err))
		return ""
	}
	switch pol.mode {
	case "testing":
		c.add(SeverityNote, "mta_sts.testing", "mta-sts."+c.domain, "mode: testing",
			"MTA-STS is in testing mode: failures are only reported, mail is still delivered without TLS.")
	case "none":
		return ""
	}
	if pol.maxAge < stsMinAge {
		c.add(SeverityWarning, "mta_sts.short_max_age", "mta-sts."+c.domain, "max_age: "+strconv.Itoa(pol.maxAge),
			"The MTA-STS max_age is under a day, so a sender's cached policy expires quickly and gives little protection.")
	}
	for _, host := range c.mxHosts {
		if !stsMatches(pol.mx, host) {
			sev := SeverityCritical
			if pol.mode == "testing" {
				sev = SeverityWarning
			}
			c.add(sev, "mta_sts.mx_mismatch", host, "mx: "+strings.Join(pol.mx, ", "),
				fmt.Sprintf("The MX host %s is not listed in the MTA-STS policy, so senders enforcing it refuse to deliver there.", strings.TrimSuffix(host, ".")))
		}
	}
	return pol.mode
}

func isAlnum(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// fetchPolicy GETs and parses a policy; redirects are refused (RFC 8461 §3.3).
func (c *check) fetchPolicy(policyURL string) (*stsPolicy, error) {
	client := *c.ck.HTTPClient
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, err := http.NewRequestWithContext(c.ctx, http.MethodGet, policyURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in the finding already
		}
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		return nil, fmt.Errorf("content type %q, want text/plain", ct)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, stsMaxPolicy+1))
	if err != nil {
		return nil, fmt.Errorf("reading the body: %w", err)
	}
	if len(body) > stsMaxPolicy {
		return nil, fmt.Errorf("policy larger than %d bytes", stsMaxPolicy)
	}
	return parseSTSPolicy(body)
}

// parseSTSPolicy parses "key: value" lines (RFC 8461 §3.2).
func parseSTSPolicy(body []byte) (*stsPolicy, error) {
	pol := &stsPolicy{maxAge: -1}
	version := ""
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("policy line %q is not key: value", line)
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "version":
			version = v
		case "mode":
			pol.mode = v
		case "max_age":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > stsMaxAge {
				return nil, fmt.Errorf("max_age %q is not 0..%d", v, stsMaxAge)
			}
			pol.maxAge = n
		case "mx":
			pol.mx = append(pol.mx, strings.ToLower(v))
		}
	}
	switch {
	case version != "STSv1":
		return nil, fmt.Errorf("version %q, want STSv1", version)
	case pol.mode != "enforce" && pol.mode != "testing" && pol.mode != "none":
		return nil, fmt.Errorf("mode %q, want enforce, testing or none", pol.mode)
	case pol.maxAge < 0:
		return nil, fmt.Errorf("policy has no max_age")
	case pol.mode != "none" && len(pol.mx) == 0:
		return nil, fmt.Errorf("policy has no mx line")
	}
	return pol, nil
}

// stsMatches reports whether host matches a policy mx pattern: exactly, or
// "*.example.com" for exactly one leftmost label.
func stsMatches(patterns []string, host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, p := range patterns {
		p = strings.TrimSuffix(p, ".")
		if p == host {
			return true
		}
		if rest, ok := strings.CutPrefix(p, "*."); ok {
			if _, after, found := strings.Cut(host, "."); found && after == rest {
				return true
			}
		}
	}
	return false
}
