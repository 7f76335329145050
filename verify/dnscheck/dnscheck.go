// Package dnscheck audits the DNS posture a domain's OTP mail depends on:
// SPF (with the RFC 7208 lookup and void-lookup limits computed by walking
// the include tree), DKIM selectors (including Microsoft 365's CNAME
// delegated two-selector model), DMARC (with organizational-domain
// fallback) and MX. Each problem is a Finding a person can act on; every
// answer read is kept as a normalised snapshot for change detection.
package dnscheck

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/otpprobe/otpprobe/verify/resolver"
)

// Domain is what to check: a header-From domain and what is known about the
// mail sent in its name.
type Domain struct {
	Name string
	// Selectors are the DKIM selectors to check.
	Selectors []Selector
	// SourceIPs delivered our canaries (from the receivers' headers); each
	// must pass SPF for Name.
	SourceIPs []net.IP
	// Senders are the configured sending paths, checked for DMARC alignment
	// with Name as the header From.
	Senders []Sender
}

// Selector is a DKIM selector of the domain.
type Selector struct {
	Name string
	// Active means the selector signs our mail now (configured so, or seen
	// in s= of our canaries): a missing key is critical. An inactive
	// Microsoft 365 selector without a key is only a note, because
	// Microsoft publishes the key of the active selector alone.
	Active bool
}

// Sender is a sending path's identities for DMARC alignment.
type Sender struct {
	Name         string
	EnvelopeFrom string // MAIL FROM address or domain
	DKIMDomain   string // d= of its signatures; empty when it does not sign
}

// Report is the result of CheckDomain.
type Report struct {
	Domain    string    `json:"domain"`
	CheckedAt time.Time `json:"checked_at"`
	Findings  []Finding `json:"findings"`
	// Records are the answers read, for change detection against earlier
	// reports.
	Records []RRset `json:"records"`
}

// Worst returns the highest severity found, 0 when there is none.
func (r Report) Worst() Severity {
	var w Severity
	for _, f := range r.Findings {
		w = max(w, f.Severity)
	}
	return w
}

// Failed reports whether any finding is an error or critical.
func (r Report) Failed() bool { return r.Worst() >= SeverityError }

// Has returns the findings with code.
func (r Report) Has(code string) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Code == code {
			out = append(out, f)
		}
	}
	return out
}

// Checker holds the network access the checks need beyond DNS. The zero
// Checker checks DNS only: MTA-STS policies are not fetched and TLSA
// records are not matched against certificates.
type Checker struct {
	// HTTPClient fetches MTA-STS policies (redirects are never followed,
	// as RFC 8461 requires).
	HTTPClient *http.Client
	// MXCertificates returns the certificate chain (leaf first) an MX host
	// presents after STARTTLS, for matching its TLSA records.
	MXCertificates func(ctx context.Context, host string) ([]*x509.Certificate, error)
}

// Cause returns the most severe error or critical finding of one check
// ("spf", "dkim", "dmarc", "mx", "mta_sts", "dane", …): what a diagnosis of
// a failing verdict names. Findings are sorted worst first, so it is the
// first match.
func (r Report) Cause(check string) (Finding, bool) {
	for _, f := range r.Findings {
		if f.Severity >= SeverityError && strings.HasPrefix(f.Code, check+".") {
			return f, true
		}
	}
	return Finding{}, false
}

// Explain returns the DNS cause of failing verdicts (RFC 8601 result
// words, "" when unknown) as one sentence naming the record, or "" when
// the report holds no cause for them. SPF is explained first, then DKIM,
// then DMARC, since a DMARC failure usually follows from the other two.
func (r Report) Explain(spf, dkim, dmarc string) string {
	failing := func(v string) bool { return v != "" && v != "pass" }
	for _, c := range []struct{ check, verdict string }{{"spf", spf}, {"dkim", dkim}, {"dmarc", dmarc}} {
		if !failing(c.verdict) {
			continue
		}
		if f, ok := r.Cause(c.check); ok {
			return f.Message
		}
	}
	return ""
}

// check carries one domain's run: the reader and the findings so far.
type check struct {
	ctx      context.Context
	ck       Checker
	rd       *reader
	r        *resolver.Resolver
	domain   string   // lower case, fully qualified
	mxHosts  []string // MX targets found, fully qualified
	findings []Finding
}

func (c *check) add(sev Severity, code, name, data, msg string) {
	c.findings = append(c.findings, Finding{Severity: sev, Code: code, Name: name, Data: data, Message: msg})
}

// CheckDomain runs the DNS checks on d through r with the zero Checker.
func CheckDomain(ctx context.Context, r *resolver.Resolver, d Domain) Report {
	return Checker{}.Check(ctx, r, d)
}

// Check runs every check on d through r. DNS failures become findings,
// never an error: a domain whose records cannot be read is exactly what
// the report must say.
func (ck Checker) Check(ctx context.Context, r *resolver.Resolver, d Domain) Report {
	rep := Report{Domain: strings.TrimSuffix(strings.ToLower(d.Name), "."), CheckedAt: time.Now().UTC()}
	if _, ok := dns.IsDomainName(d.Name); !ok || rep.Domain == "" || strings.Contains(d.Name, " ") {
		rep.Findings = []Finding{{Severity: SeverityError, Code: "domain.invalid", Name: d.Name, Data: d.Name,
			Message: "The domain name is not a valid DNS name."}}
		return rep
	}
	c := &check{ctx: ctx, ck: ck, rd: newReader(r), r: r, domain: dns.CanonicalName(d.Name)}
	spfBroken := c.checkSPF()
	c.checkDKIM(d)
	c.checkDMARC(d)
	c.checkMX()
	stsMode := c.checkMTASTS()
	dane := c.checkDANE()
	c.checkTLSRPT(stsMode != "" || dane)
	c.checkDNSSEC()
	if !spfBroken {
		c.checkSourceIPs(d)
	}
	if ctx.Err() != nil {
		c.add(SeverityError, "check.incomplete", c.domain, ctx.Err().Error(),
			"The check was cancelled before it finished; findings may be missing.")
	}
	sortFindings(c.findings)
	rep.Findings = c.findings
	rep.Records = c.rd.snapshot()
	return rep
}

// checkDNSSEC notes a zone that is not signed (only meaningful through a
// validating resolver, Config.DNSSEC): without DNSSEC, DANE cannot protect
// mail to the domain and its records can be spoofed.
func (c *check) checkDNSSEC() {
	if !c.r.DNSSEC() {
		return
	}
	a := c.rd.query(c.ctx, c.domain, dns.TypeTXT)
	if (a.out == found || a.out == nodata) && !a.rrset.AD {
		c.add(SeverityNote, "dnssec.unsigned", c.domain, "AD=0",
			fmt.Sprintf("Answers for %s are not DNSSEC-authenticated, so DANE cannot protect mail to it and its records can be spoofed.", strings.TrimSuffix(c.domain, ".")))
	}
}

// describe says in words what a failed answer means.
func describe(a answer) string {
	switch a.out {
	case nxdomain:
		return "does not exist (NXDOMAIN)"
	case nodata:
		return "has no " + a.rrset.Type + " record"
	case tempfail:
		if a.rrset.Rcode == "TIMEOUT" {
			return "does not answer (timeout)"
		}
		return "answers " + a.rrset.Rcode
	default:
		return "answers " + a.rrset.Rcode
	}
}
