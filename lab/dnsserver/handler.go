package dnsserver

import (
	"net"

	"github.com/miekg/dns"
)

const (
	// maxUDPSize caps UDP answers whatever the client advertises (DNS flag
	// day 2020), so large TXT RRsets are truncated and retried over TCP.
	maxUDPSize = 1232
	// maxChain bounds CNAME chasing inside one answer.
	maxChain = 16
)

func (s *Server) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = false

	opt := req.IsEdns0()
	switch {
	case req.Opcode != dns.OpcodeQuery:
		m.SetRcode(req, dns.RcodeNotImplemented)
		m.Authoritative = false
	case len(req.Question) != 1:
		m.SetRcode(req, dns.RcodeFormatError)
		m.Authoritative = false
	case opt != nil && opt.Version() != 0:
		m.SetRcode(req, dns.RcodeBadVers)
		m.Authoritative = false
	case req.Question[0].Qclass != dns.ClassINET && req.Question[0].Qclass != dns.ClassANY:
		m.SetRcode(req, dns.RcodeRefused)
		m.Authoritative = false
	default:
		if drop := s.answer(m, req.Question[0]); drop {
			return
		}
	}

	size := dns.MinMsgSize
	if opt != nil {
		// Echo EDNS0 (with the DO bit) and honour the client's buffer size.
		m.SetEdns0(maxUDPSize, opt.Do())
		size = min(max(int(opt.UDPSize()), dns.MinMsgSize), maxUDPSize)
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

// answer fills m for question q from the store. It reports true when the
// query must be dropped (FaultTimeout).
func (s *Server) answer(m *dns.Msg, q dns.Question) (drop bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()

	name := canonical(q.Name)
	seen := map[string]bool{}
	for hop := 0; ; hop++ {
		switch s.faults[name] {
		case FaultTimeout:
			return true
		case FaultServfail:
			m.Answer = nil
			m.Rcode = dns.RcodeServerFailure
			m.Authoritative = false
			return false
		case FaultRefused:
			m.Answer = nil
			m.Rcode = dns.RcodeRefused
			m.Authoritative = false
			return false
		case FaultNXDomain:
			m.Rcode = dns.RcodeNameError
			m.Ns = []dns.RR{s.zone.soa(name)}
			return false
		}

		sets := s.zone.sets(name)
		owner := "" // first hop keeps the query's spelling (0x20 case)
		if hop == 0 {
			owner = q.Name
		}
		if q.Qtype == dns.TypeANY && len(sets) > 0 {
			for _, rrs := range sets {
				m.Answer = appendCopies(m.Answer, rrs, owner)
			}
			return false
		}
		if rrs := sets[q.Qtype]; len(rrs) > 0 {
			m.Answer = appendCopies(m.Answer, rrs, owner)
			return false
		}
		if cn := sets[dns.TypeCNAME]; len(cn) > 0 && q.Qtype != dns.TypeCNAME {
			m.Answer = appendCopies(m.Answer, cn, owner)
			seen[name] = true
			target := canonical(cn[0].(*dns.CNAME).Target)
			if seen[target] || hop+1 >= maxChain {
				// A loop: return the chain so far; resolvers detect it.
				return false
			}
			name = target
			continue
		}
		m.Ns = []dns.RR{s.zone.soa(name)}
		if len(sets) == 0 && !s.zone.hasDescendant(name) {
			m.Rcode = dns.RcodeNameError
		}
		return false
	}
}

func appendCopies(dst, rrs []dns.RR, owner string) []dns.RR {
	for _, rr := range rrs {
		c := dns.Copy(rr)
		if owner != "" {
			c.Header().Name = owner
		}
		dst = append(dst, c)
	}
	return dst
}
