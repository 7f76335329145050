package dnsserver

import (
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// store is the record store: RRsets by canonical owner name and type, and
// for every ancestor of a held name how many held names lie below it, so
// empty non-terminals are found without scanning.
type store struct {
	names map[string]map[uint16][]dns.RR
	below map[string]int
}

func newStore() *store {
	return &store{names: make(map[string]map[uint16][]dns.RR), below: make(map[string]int)}
}

// sets returns the RRsets of a canonical name (nil if none).
func (z *store) sets(name string) map[uint16][]dns.RR { return z.names[name] }

// ancestors calls fn for every proper ancestor of name, root included.
func ancestors(name string, fn func(string)) {
	for i, end := dns.NextLabel(name, 0); !end; i, end = dns.NextLabel(name, i) {
		fn(name[i:])
	}
	if name != "." {
		fn(".")
	}
}

// canonical returns the lookup key of a name: lower case, fully qualified.
func canonical(name string) string {
	return dns.CanonicalName(strings.TrimSpace(name))
}

// parseRR parses one zone-file line. Stored records are never mutated after
// this point; the handler copies them before packing.
func parseRR(line string) (dns.RR, error) {
	rr, err := dns.NewRR(line)
	if err != nil {
		return nil, fmt.Errorf("dnsserver: bad record %q: %w", line, err)
	}
	if rr == nil {
		return nil, fmt.Errorf("dnsserver: bad record %q: empty", line)
	}
	if rr.Header().Class != dns.ClassINET {
		return nil, fmt.Errorf("dnsserver: bad record %q: class must be IN", line)
	}
	if t, ok := rr.(*dns.TXT); ok {
		t.Txt = splitTXT(t.Txt)
	}
	return rr, nil
}

// splitTXT splits character-strings longer than 255 bytes, as DKIM keys need.
// The zone-file parser already does this for quoted strings; records built
// in code may not.
func splitTXT(in []string) []string {
	var out []string
	for _, s := range in {
		for len(s) > 255 {
			out = append(out, s[:255])
			s = s[255:]
		}
		out = append(out, s)
	}
	return out
}

func (z *store) add(rr dns.RR) {
	name := canonical(rr.Header().Name)
	sets := z.names[name]
	if sets == nil {
		sets = make(map[uint16][]dns.RR)
		z.names[name] = sets
		ancestors(name, func(a string) { z.below[a]++ })
	}
	t := rr.Header().Rrtype
	for _, old := range sets[t] {
		if dns.IsDuplicate(old, rr) {
			return
		}
	}
	sets[t] = append(sets[t], rr)
}

func (z *store) remove(name string, qtype uint16) {
	sets := z.names[name]
	if sets == nil {
		return
	}
	if qtype != dns.TypeANY {
		delete(sets, qtype)
		if len(sets) > 0 {
			return
		}
	}
	delete(z.names, name)
	ancestors(name, func(a string) {
		if z.below[a]--; z.below[a] <= 0 {
			delete(z.below, a)
		}
	})
}

// hasDescendant reports whether some held name lies below name, which makes
// name an empty non-terminal (NODATA, not NXDOMAIN: RFC 8020).
func (z *store) hasDescendant(name string) bool { return z.below[name] > 0 }

// soa returns the SOA for negative answers about name: the closest enclosing
// SOA held, or a synthesized one at name's top-level label.
func (z *store) soa(name string) dns.RR {
	for n := name; ; {
		if s := z.names[n][dns.TypeSOA]; len(s) > 0 {
			return dns.Copy(s[0])
		}
		i, end := dns.NextLabel(n, 0)
		if end {
			break
		}
		n = n[i:]
	}
	labels := dns.SplitDomainName(name)
	apex := "."
	if len(labels) > 0 {
		apex = labels[len(labels)-1] + "."
	}
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: apex, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: negativeTTL},
		Ns:      "ns." + strings.TrimPrefix(apex, "."),
		Mbox:    "hostmaster." + strings.TrimPrefix(apex, "."),
		Serial:  1,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  negativeTTL,
	}
}

// negativeTTL is short so that a repaired record is seen quickly by caches.
const negativeTTL = 60

// all returns every record, sorted by owner name, type and text.
func (z *store) all() []dns.RR {
	var out []dns.RR
	for _, sets := range z.names {
		for _, rrs := range sets {
			for _, rr := range rrs {
				out = append(out, dns.Copy(rr))
			}
		}
	}
	slices.SortFunc(out, func(a, b dns.RR) int {
		if c := strings.Compare(canonical(a.Header().Name), canonical(b.Header().Name)); c != 0 {
			return c
		}
		if a.Header().Rrtype != b.Header().Rrtype {
			return int(a.Header().Rrtype) - int(b.Header().Rrtype)
		}
		return strings.Compare(a.String(), b.String())
	})
	return out
}
