package dnscheck

import (
	"cmp"
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/dns"
	"github.com/otpprobe/otpprobe/verify/resolver"
)

// RRset is one answer a check read, normalised for change detection:
// the same DNS data always gives an equal RRset.
type RRset struct {
	Name   string   `json:"name"`             // queried name, lower case, fully qualified
	Type   string   `json:"type"`             // "TXT", "MX", …
	Rcode  string   `json:"rcode"`            // "NOERROR", "NXDOMAIN", "SERVFAIL", or "TIMEOUT"/"ERROR" for transport failures
	CNAMEs []string `json:"cnames,omitempty"` // chain followed
	Data   []string `json:"data,omitempty"`   // rdata of the answer, sorted; TXT strings joined
	AD     bool     `json:"ad,omitempty"`     // authenticated by a validating resolver
}

// outcome classifies an answer the way checks reason about it.
type outcome int

const (
	found    outcome = iota // records of the type exist
	nodata                  // the name exists without that type
	nxdomain                // the name (or the end of its CNAME chain) does not exist
	tempfail                // SERVFAIL, REFUSED, timeout, network: receivers temperror
	otherErr                // any other rcode or a CNAME loop
)

// answer is a Query result reduced to what checks need.
type answer struct {
	rrset RRset
	out   outcome
	rrs   []dns.RR
}

// status is the observed data for a failed answer: the rcode, or NODATA.
func (a answer) status() string {
	if a.out == nodata {
		return "NODATA"
	}
	return a.rrset.Rcode
}

// reader runs queries for one domain's checks, memoises them (SPF trees
// and DMARC fallbacks ask the same names) and records the snapshot.
type reader struct {
	r    *resolver.Resolver
	mu   sync.Mutex
	seen map[string]answer // key: name + " " + type
}

func newReader(r *resolver.Resolver) *reader {
	return &reader{r: r, seen: make(map[string]answer)}
}

func (rd *reader) query(ctx context.Context, name string, qtype uint16) answer {
	name = dns.CanonicalName(name)
	key := name + " " + dns.TypeToString[qtype]
	rd.mu.Lock()
	a, ok := rd.seen[key]
	rd.mu.Unlock()
	if ok {
		return a
	}
	a = answer{rrset: RRset{Name: name, Type: dns.TypeToString[qtype]}}
	resp, err := rd.r.Query(ctx, name, qtype)
	var de *net.DNSError
	switch {
	case err == nil:
		a.rrset.Rcode = dns.RcodeToString[resp.Rcode]
		a.rrset.CNAMEs = resp.CNAMEs
		a.rrset.AD = resp.AD && rd.r.DNSSEC()
		a.rrs = resp.Answer
		switch {
		case resp.Rcode == dns.RcodeSuccess && len(resp.Answer) > 0:
			a.out = found
		case resp.Rcode == dns.RcodeSuccess:
			a.out = nodata
		case resp.Rcode == dns.RcodeNameError:
			a.out = nxdomain
		case resp.Rcode == dns.RcodeServerFailure || resp.Rcode == dns.RcodeRefused:
			a.out = tempfail
		default:
			a.out = otherErr
		}
	case errors.Is(err, resolver.ErrCNAMELoop):
		a.rrset.Rcode = "CNAME-LOOP"
		a.out = otherErr
	case errors.As(err, &de) && de.IsTimeout:
		a.rrset.Rcode = "TIMEOUT"
		a.out = tempfail
	default:
		a.rrset.Rcode = "ERROR"
		a.out = tempfail
	}
	for _, rr := range a.rrs {
		a.rrset.Data = append(a.rrset.Data, rdata(rr))
	}
	slices.Sort(a.rrset.Data)
	if ctx.Err() == nil { // never memoise a cancelled lookup
		rd.mu.Lock()
		rd.seen[key] = a
		rd.mu.Unlock()
	}
	return a
}

// rdata is the record's data without owner, TTL and class; TXT strings are
// joined as receivers join them.
func rdata(rr dns.RR) string {
	if t, ok := rr.(*dns.TXT); ok {
		return strings.Join(t.Txt, "")
	}
	s := rr.String()
	h := rr.Header().String()
	return strings.TrimSpace(strings.TrimPrefix(s, h))
}

// snapshot returns every answer read, sorted by name and type.
func (rd *reader) snapshot() []RRset {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	out := make([]RRset, 0, len(rd.seen))
	for _, a := range rd.seen {
		out = append(out, a.rrset)
	}
	slices.SortFunc(out, func(a, b RRset) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Type, b.Type))
	})
	return out
}

// txts returns the joined TXT strings of a found answer.
func (a answer) txts() []string {
	var out []string
	for _, rr := range a.rrs {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out
}
