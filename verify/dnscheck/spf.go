package dnscheck

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/miekg/dns"
)

// RFC 7208 §4.6.4 limits.
const (
	spfLookupLimit = 10
	spfVoidLimit   = 2
	spfMXLimit     = 10
	// spfWalkBudget stops walking a tree far past the limit (a loop, or a
	// hostile record) so one domain cannot cost unbounded queries.
	spfWalkBudget = 40
)

// spfTerm is a mechanism or a modifier of an SPF record.
type spfTerm struct {
	qualifier byte   // '+', '-', '~', '?' (mechanisms only)
	name      string // lower case: all, include, a, mx, ptr, ip4, ip6, exists; or the modifier's name
	arg       string // domain-spec, address or modifier value; "" when absent
	modifier  bool
}

// spfRecords returns the TXT strings that are SPF records (RFC 7208 §4.5).
func spfRecords(txts []string) []string {
	var out []string
	for _, t := range txts {
		if len(t) >= 6 && strings.EqualFold(t[:6], "v=spf1") && (len(t) == 6 || t[6] == ' ') {
			out = append(out, t)
		}
	}
	return out
}

// parseSPF parses one record into terms, failing on what receivers reject
// with permerror.
func parseSPF(rec string) ([]spfTerm, error) {
	var terms []spfTerm
	seenMod := map[string]bool{}
	fields := strings.Fields(rec)
	if len(fields) == 0 || !strings.EqualFold(fields[0], "v=spf1") {
		return nil, fmt.Errorf("record does not start with v=spf1")
	}
	for _, f := range fields[1:] {
		if i := strings.IndexAny(f, "=:/"); i > 0 && f[i] == '=' {
			name := strings.ToLower(f[:i])
			if !isModifierName(name) {
				return nil, fmt.Errorf("invalid modifier %q", f)
			}
			if (name == "redirect" || name == "exp") && seenMod[name] {
				return nil, fmt.Errorf("%s= appears twice", name)
			}
			seenMod[name] = true
			if name == "redirect" && f[i+1:] == "" {
				return nil, fmt.Errorf("redirect= without a domain")
			}
			terms = append(terms, spfTerm{name: name, arg: f[i+1:], modifier: true})
			continue
		}
		t := spfTerm{qualifier: '+'}
		if strings.ContainsRune("+-~?", rune(f[0])) {
			t.qualifier, f = f[0], f[1:]
		}
		name, arg := f, ""
		if i := strings.IndexAny(f, ":/"); i >= 0 {
			name, arg = f[:i], f[i:]
		}
		t.name = strings.ToLower(name)
		switch t.name {
		case "all":
			if arg != "" {
				return nil, fmt.Errorf("all takes no argument: %q", f)
			}
		case "include", "exists":
			if !strings.HasPrefix(arg, ":") || len(arg) == 1 {
				return nil, fmt.Errorf("%s needs a domain: %q", t.name, f)
			}
			t.arg = arg[1:]
		case "a", "mx":
			domain, cidr, _ := strings.Cut(arg, "/")
			if cidr != "" || strings.HasSuffix(arg, "/") {
				if err := checkDualCIDR("/" + cidr); err != nil {
					return nil, fmt.Errorf("%w in %q", err, f)
				}
			}
			if domain != "" {
				if !strings.HasPrefix(domain, ":") || len(domain) == 1 {
					return nil, fmt.Errorf("bad domain in %q", f)
				}
				t.arg = domain[1:]
			}
		case "ptr":
			if arg != "" {
				if !strings.HasPrefix(arg, ":") || len(arg) == 1 {
					return nil, fmt.Errorf("bad domain in %q", f)
				}
				t.arg = arg[1:]
			}
		case "ip4", "ip6":
			if !strings.HasPrefix(arg, ":") {
				return nil, fmt.Errorf("%s needs an address: %q", t.name, f)
			}
			t.arg = arg[1:]
			if err := checkIP(t.name, t.arg); err != nil {
				return nil, fmt.Errorf("%w in %q", err, f)
			}
		default:
			return nil, fmt.Errorf("unknown mechanism %q", f)
		}
		terms = append(terms, t)
	}
	return terms, nil
}

func isModifierName(s string) bool {
	if s == "" || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlpha(c) && !(c >= '0' && c <= '9') && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// checkDualCIDR validates "/n", "//m" or "/n//m" of a and mx.
func checkDualCIDR(s string) error {
	v4, v6, dual := strings.Cut(s, "//")
	if v4 != "" {
		if n, err := strconv.Atoi(strings.TrimPrefix(v4, "/")); err != nil || !strings.HasPrefix(v4, "/") || n < 0 || n > 32 {
			return fmt.Errorf("bad IPv4 prefix length %q", v4)
		}
	}
	if dual {
		if n, err := strconv.Atoi(v6); err != nil || n < 0 || n > 128 {
			return fmt.Errorf("bad IPv6 prefix length %q", v6)
		}
	}
	return nil
}

func checkIP(kind, s string) error {
	addr, bits, hasBits := strings.Cut(s, "/")
	ip := net.ParseIP(addr)
	max := 32
	if kind == "ip6" {
		max = 128
	}
	if ip == nil || (kind == "ip4") != (ip.To4() != nil && !strings.Contains(addr, ":")) {
		return fmt.Errorf("bad %s address", kind)
	}
	if hasBits {
		if n, err := strconv.Atoi(bits); err != nil || n < 0 || n > max {
			return fmt.Errorf("bad prefix length /%s", bits)
		}
	}
	return nil
}

// expandDomain expands the macros a static walk can know (%{d}, %{o}, %%,
// %_ and %-); ok is false when the domain depends on the connecting client
// (%{i}, %{s}, %{l}, …) and cannot be resolved ahead of time.
func expandDomain(spec, current, top string) (string, bool) {
	if !strings.Contains(spec, "%") {
		return spec, true
	}
	var b strings.Builder
	for i := 0; i < len(spec); i++ {
		if spec[i] != '%' {
			b.WriteByte(spec[i])
			continue
		}
		if i+1 >= len(spec) {
			return "", false
		}
		switch spec[i+1] {
		case '%':
			b.WriteByte('%')
			i++
		case '_':
			b.WriteByte(' ')
			i++
		case '-':
			b.WriteString("%20")
			i++
		case '{':
			end := strings.IndexByte(spec[i:], '}')
			if end < 0 {
				return "", false
			}
			switch strings.ToLower(spec[i+2 : i+end]) {
			case "d":
				b.WriteString(strings.TrimSuffix(current, "."))
			case "o":
				b.WriteString(strings.TrimSuffix(top, "."))
			default:
				return "", false
			}
			i += end
		default:
			return "", false
		}
	}
	return b.String(), true
}

// spfWalk is a static evaluation of a record tree: every term is visited,
// not just those before the first match, so the count is what the worst
// sender costs a receiver.
type spfWalk struct {
	c       *check
	lookups int
	voids   int
	broken  bool // a finding that makes receivers return temperror/permerror
}

// checkSPF checks the domain's SPF tree and reports whether SPF is broken
// for every sender.
func (c *check) checkSPF() (broken bool) {
	w := &spfWalk{c: c}
	terms, ok := w.record(c.domain, "")
	if !ok {
		return true
	}
	w.walk(c.domain, terms, []string{c.domain})

	if w.lookups > spfLookupLimit {
		w.broken = true
		c.add(SeverityCritical, "spf.too_many_lookups", c.domain, strconv.Itoa(w.lookups),
			fmt.Sprintf("SPF needs %d DNS lookups (limit %d): receivers return permerror and DMARC relies on DKIM alone.", w.lookups, spfLookupLimit))
	}
	if w.voids > spfVoidLimit {
		w.broken = true
		c.add(SeverityCritical, "spf.too_many_void_lookups", c.domain, strconv.Itoa(w.voids),
			fmt.Sprintf("SPF has %d lookups that find nothing (limit %d): receivers return permerror.", w.voids, spfVoidLimit))
	}

	var all *spfTerm
	redirect := false
	for i, t := range terms {
		if t.name == "all" && !t.modifier {
			all = &terms[i]
		}
		if t.name == "redirect" && t.modifier {
			redirect = true
		}
	}
	switch {
	case all == nil && !redirect:
		c.add(SeverityWarning, "spf.no_all", c.domain, spfRecords(c.rd.query(c.ctx, c.domain, dns.TypeTXT).txts())[0],
			"The SPF record ends without an all mechanism, so mail from anywhere else is neutral instead of failing.")
	case all != nil && all.qualifier == '+':
		c.add(SeverityError, "spf.pass_all", c.domain, "+all",
			"The SPF record ends in +all, which authorises every host on the internet to send as this domain.")
	case all != nil && all.qualifier == '?':
		c.add(SeverityWarning, "spf.neutral_all", c.domain, "?all",
			"The SPF record ends in ?all, which makes SPF say nothing about unauthorised senders.")
	}
	return w.broken
}

// record fetches and parses the SPF record at domain. via is the term that
// led there ("include", "redirect"; "" for the domain itself).
func (w *spfWalk) record(domain, via string) ([]spfTerm, bool) {
	c := w.c
	a := c.rd.query(c.ctx, domain, dns.TypeTXT)
	top := strings.TrimSuffix(c.domain, ".")
	// subject names the record; owner is who "has" records.
	subject, owner, prefix := "The SPF record of "+top, top, "spf."
	if via != "" {
		subject, prefix = "The SPF "+via+" "+strings.TrimSuffix(domain, "."), "spf."+via+"_"
		owner = subject
	}
	// Terms before an include still match, so a broken include fails the
	// mail that reaches it; a broken record fails all mail.
	reach := "all mail"
	if via != "" {
		reach = "mail that reaches it"
	}
	permerror := ": receivers return permerror for " + reach + " from " + top + "."
	if a.out == found && len(spfRecords(a.txts())) == 1 {
		terms, err := parseSPF(spfRecords(a.txts())[0])
		if err == nil {
			return terms, true
		}
		c.add(SeverityCritical, prefix+"syntax", domain, spfRecords(a.txts())[0],
			fmt.Sprintf("%s is invalid (%v)%s", subject, err, permerror))
		w.broken = true
		return nil, false
	}
	w.broken = true
	switch {
	case a.out == tempfail || a.out == otherErr:
		c.add(SeverityCritical, prefix+"tempfail", domain, a.status(),
			fmt.Sprintf("%s %s: receivers return temperror for %s from %s and may defer or junk it.", subject, describe(a), reach, top))
	case via == "" && (a.out == nxdomain || a.out == nodata):
		c.add(SeverityCritical, "spf.missing", domain, a.status(),
			fmt.Sprintf("%s has no SPF record (%s): receivers find no SPF policy, so DMARC relies on DKIM alone.", top, a.status()))
	case a.out == nxdomain || a.out == nodata:
		w.voids++
		c.add(SeverityCritical, prefix+strings.ToLower(a.status()), domain, a.status(), subject+" "+describe(a)+permerror)
	case len(spfRecords(a.txts())) == 0:
		code, impact := prefix+"no_record", permerror
		if via == "" {
			code, impact = "spf.missing", ": receivers find no SPF policy, so DMARC relies on DKIM alone."
		}
		c.add(SeverityCritical, code, domain, strings.Join(a.txts(), " | "),
			owner+" has TXT records but none is an SPF record (v=spf1)"+impact)
	default:
		recs := spfRecords(a.txts())
		c.add(SeverityCritical, prefix+"multiple", domain, strings.Join(recs, " | "),
			fmt.Sprintf("%s has %d SPF records where one is allowed%s", owner, len(recs), permerror))
	}
	return nil, false
}

// walk visits every term of one record; path holds the domains on the way
// here, to catch include loops.
func (w *spfWalk) walk(domain string, terms []spfTerm, path []string) {
	c := w.c
	hasAll := false
	for _, t := range terms {
		if t.name == "all" && !t.modifier {
			hasAll = true
		}
	}
	for _, t := range terms {
		if w.lookups > spfWalkBudget || c.ctx.Err() != nil {
			return
		}
		if t.modifier && (t.name != "redirect" || hasAll) {
			continue // exp= and unknown modifiers cost nothing; redirect is ignored next to all
		}
		switch t.name {
		case "ip4", "ip6", "all":
			continue
		}
		w.lookups++
		target := domain
		if t.arg != "" {
			exp, ok := expandDomain(t.arg, domain, c.domain)
			if !ok {
				continue // depends on the sender: counted, not resolvable now
			}
			if _, valid := dns.IsDomainName(exp); !valid || !strings.Contains(strings.Trim(exp, "."), ".") {
				w.broken = true
				c.add(SeverityCritical, "spf.syntax", domain, t.name+":"+t.arg,
					fmt.Sprintf("The SPF term %s:%s does not name a valid domain; receivers return permerror.", t.name, t.arg))
				continue
			}
			target = dns.CanonicalName(exp)
		}
		switch t.name {
		case "include", "redirect":
			via := "include"
			if t.name == "redirect" {
				via = "redirect"
			}
			if inPath(path, target) {
				w.broken = true
				c.add(SeverityCritical, "spf.loop", target, strings.Join(append(path, target), " -> "),
					"The SPF "+via+" chain loops back to "+strings.TrimSuffix(target, ".")+"; receivers return permerror.")
				continue
			}
			if sub, ok := w.record(target, via); ok {
				w.walk(target, sub, append(path[:len(path):len(path)], target))
			}
		case "a":
			w.void(domain, t, c.rd.query(c.ctx, target, dns.TypeA), c.rd.query(c.ctx, target, dns.TypeAAAA))
		case "exists":
			w.void(domain, t, c.rd.query(c.ctx, target, dns.TypeA))
		case "mx":
			a := c.rd.query(c.ctx, target, dns.TypeMX)
			w.void(domain, t, a)
			if len(a.rrs) > spfMXLimit {
				w.broken = true
				c.add(SeverityCritical, "spf.mx_too_many", target, strconv.Itoa(len(a.rrs)),
					fmt.Sprintf("The SPF mx mechanism of %s finds %d MX hosts (limit %d); receivers return permerror.",
						strings.TrimSuffix(domain, "."), len(a.rrs), spfMXLimit))
			}
		case "ptr":
			c.add(SeverityWarning, "spf.ptr", domain, "ptr"+prefixArg(t.arg),
				"The SPF record uses ptr, which RFC 7208 says not to use: it is slow and some receivers ignore it.")
		}
	}
}

func prefixArg(arg string) string {
	if arg == "" {
		return ""
	}
	return ":" + arg
}

// void counts a lookup that found nothing and reports one that failed.
func (w *spfWalk) void(domain string, t spfTerm, answers ...answer) {
	empty := true
	for _, a := range answers {
		switch a.out {
		case found:
			empty = false
		case tempfail, otherErr:
			w.c.add(SeverityError, "spf.lookup_tempfail", a.rrset.Name, a.status(),
				fmt.Sprintf("The SPF %s mechanism of %s looks up %s, which %s: receivers reaching it return temperror.",
					t.name, strings.TrimSuffix(domain, "."), strings.TrimSuffix(a.rrset.Name, "."), describe(a)))
			return
		}
	}
	if empty {
		w.voids++
	}
}

func inPath(path []string, d string) bool {
	for _, p := range path {
		if p == d {
			return true
		}
	}
	return false
}

// checkSourceIPs evaluates SPF, as receivers do, for the addresses that
// actually delivered our canaries.
func (c *check) checkSourceIPs(d Domain) {
	for _, ip := range d.SourceIPs {
		res, err := spf.CheckHostWithSender(ip, "", "postmaster@"+strings.TrimSuffix(c.domain, "."),
			spf.WithResolver(c.r), spf.WithContext(c.ctx))
		if res == spf.Pass {
			continue
		}
		sev := SeverityCritical
		if res == spf.TempError {
			sev = SeverityError
		}
		data := ip.String() + ": " + string(res)
		if err != nil {
			data += " (" + err.Error() + ")"
		}
		c.add(sev, "spf.source_not_authorised", c.domain, data,
			fmt.Sprintf("%s, which delivered our mail, gets SPF %s for %s instead of pass.", ip, res, strings.TrimSuffix(c.domain, ".")))
	}
}
