package resolver

import (
	"cmp"
	"context"
	"net"
	"slices"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/miekg/dns"
)

// The resolver plugs into blitiri spf (spf.WithResolver) as it is.
var _ spf.DNSResolver = (*Resolver)(nil)

// lookup runs Query and turns every outcome but "records found" into a
// *net.DNSError classified like the net package does: NXDOMAIN and NODATA
// are IsNotFound, SERVFAIL/REFUSED are IsTemporary, timeouts IsTimeout.
func (r *Resolver) lookup(ctx context.Context, name string, qtype uint16) (*Response, error) {
	resp, err := r.Query(ctx, name, qtype)
	if err != nil {
		return nil, err
	}
	if err := classify(name, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// classify returns nil if resp holds records, else the *net.DNSError
// describing why not.
func classify(name string, resp *Response) error {
	de := &net.DNSError{Name: name, Server: resp.Server}
	switch resp.Rcode {
	case dns.RcodeSuccess:
		if len(resp.Answer) > 0 {
			return nil
		}
		de.Err = "no " + dns.TypeToString[resp.Qtype] + " records (NODATA)"
		de.IsNotFound = true
	case dns.RcodeNameError:
		de.Err = "no such host"
		de.IsNotFound = true
	case dns.RcodeServerFailure:
		de.Err = "server misbehaving (SERVFAIL)"
		de.IsTemporary = true
	case dns.RcodeRefused:
		de.Err = "query refused (REFUSED)"
		de.IsTemporary = true
	default:
		de.Err = "server answered " + dns.RcodeToString[resp.Rcode]
	}
	return de
}

// LookupTXT returns one string per TXT record, its character-strings
// joined with "" (as net.LookupTXT does).
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	resp, err := r.lookup(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(resp.Answer))
	for _, rr := range resp.Answer {
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out, nil
}

// LookupMX returns the MX records sorted by preference (stable). Hosts are
// fully qualified; a null MX (RFC 7505) comes back as host ".".
func (r *Resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	resp, err := r.lookup(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	out := make([]*net.MX, 0, len(resp.Answer))
	for _, rr := range resp.Answer {
		mx := rr.(*dns.MX)
		out = append(out, &net.MX{Host: mx.Mx, Pref: mx.Preference})
	}
	slices.SortStableFunc(out, func(a, b *net.MX) int { return cmp.Compare(a.Pref, b.Pref) })
	return out, nil
}

// LookupIPAddr returns the A and AAAA addresses of host (queried in
// parallel). An IP literal returns itself. It fails only if neither query
// found addresses; a temporary failure wins over "not found" then.
func (r *Resolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	if ip, zone, ok := ipLiteral(host); ok {
		return []net.IPAddr{{IP: ip, Zone: zone}}, nil
	}
	type result struct {
		resp *Response
		err  error
	}
	aaaa := make(chan result, 1)
	go func() {
		resp, err := r.lookup(ctx, host, dns.TypeAAAA)
		aaaa <- result{resp, err}
	}()
	respA, errA := r.lookup(ctx, host, dns.TypeA)
	res6 := <-aaaa

	var out []net.IPAddr
	for _, resp := range []*Response{respA, res6.resp} {
		if resp == nil {
			continue
		}
		for _, rr := range resp.Answer {
			switch v := rr.(type) {
			case *dns.A:
				out = append(out, net.IPAddr{IP: v.A})
			case *dns.AAAA:
				out = append(out, net.IPAddr{IP: v.AAAA})
			}
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	if isNotFound(errA) && res6.err != nil && !isNotFound(res6.err) {
		return nil, res6.err
	}
	return nil, errA
}

func ipLiteral(host string) (net.IP, string, bool) {
	h, zone, _ := strings.Cut(host, "%")
	ip := net.ParseIP(h)
	return ip, zone, ip != nil
}

func isNotFound(err error) bool {
	de, ok := err.(*net.DNSError)
	return ok && de.IsNotFound
}

// LookupAddr returns the PTR names of an IP address.
func (r *Resolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	arpa, err := dns.ReverseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: "unrecognized address", Name: addr}
	}
	resp, err := r.lookup(ctx, arpa, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(resp.Answer))
	for _, rr := range resp.Answer {
		out = append(out, rr.(*dns.PTR).Ptr)
	}
	return out, nil
}

// LookupCNAME returns the canonical name of host: the end of its CNAME
// chain, or host itself (fully qualified) if it has no CNAME but exists.
func (r *Resolver) LookupCNAME(ctx context.Context, host string) (string, error) {
	resp, err := r.Query(ctx, host, dns.TypeA)
	if err != nil {
		return "", err
	}
	if resp.Rcode != dns.RcodeSuccess {
		return "", classify(host, resp)
	}
	return resp.Target(), nil
}

// LookupTLSA returns the TLSA records at name (e.g. from dns.TLSAName) and
// whether the answer was authenticated (AD bit; meaningful only with
// Config.DNSSEC and a trusted validating server).
func (r *Resolver) LookupTLSA(ctx context.Context, name string) ([]*dns.TLSA, bool, error) {
	resp, err := r.lookup(ctx, name, dns.TypeTLSA)
	if err != nil {
		return nil, false, err
	}
	out := make([]*dns.TLSA, 0, len(resp.Answer))
	for _, rr := range resp.Answer {
		out = append(out, rr.(*dns.TLSA))
	}
	return out, resp.AD, nil
}
