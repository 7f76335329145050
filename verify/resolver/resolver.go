// Package resolver is the one DNS stub resolver of otpprobe, built on
// miekg/dns: explicit servers, per-try timeouts derived from the context,
// retries across servers, TCP fallback on truncation, CNAME chasing, and
// errors shaped as *net.DNSError so SPF, DKIM and DMARC libraries classify
// temporary and permanent failures correctly.
package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Config selects the servers and transport behaviour.
type Config struct {
	Servers []string      // "ip:port"; empty: from /etc/resolv.conf
	Timeout time.Duration // per try, default 2s
	Retries int           // default 2 (3 tries), next server on each retry; negative: no retry
	UDPSize uint16        // EDNS0 buffer size, default 1232
	DNSSEC  bool          // set the DO bit; AD is reported in Response
}

// Defaults.
const (
	DefaultTimeout = 2 * time.Second
	DefaultRetries = 2
	DefaultUDPSize = 1232
	// MaxCNAMEs bounds the chain followed by Query.
	MaxCNAMEs = 8
)

// resolvConf is where servers come from when Config.Servers is empty.
var resolvConf = "/etc/resolv.conf"

// Resolver sends queries to the configured servers. It is safe for
// concurrent use.
type Resolver struct {
	servers []string
	timeout time.Duration
	tries   int
	udpSize uint16
	dnssec  bool
	udp     *dns.Client
	tcp     *dns.Client
}

// New validates cfg, applies defaults and returns a Resolver.
func New(cfg Config) (*Resolver, error) {
	r := &Resolver{timeout: cfg.Timeout, tries: cfg.Retries + 1, udpSize: cfg.UDPSize, dnssec: cfg.DNSSEC}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("resolver: timeout %v is negative", cfg.Timeout)
	}
	if cfg.Retries < 0 {
		r.tries = 1
	}
	if r.timeout == 0 {
		r.timeout = DefaultTimeout
	}
	if cfg.Retries == 0 {
		r.tries = DefaultRetries + 1
	}
	if r.udpSize == 0 {
		r.udpSize = DefaultUDPSize
	}
	if r.udpSize < dns.MinMsgSize {
		return nil, fmt.Errorf("resolver: UDP size %d is below %d", cfg.UDPSize, dns.MinMsgSize)
	}
	if len(cfg.Servers) == 0 {
		cc, err := dns.ClientConfigFromFile(resolvConf)
		if err != nil {
			return nil, fmt.Errorf("resolver: no servers configured and %s unreadable: %w", resolvConf, err)
		}
		for _, s := range cc.Servers {
			r.servers = append(r.servers, net.JoinHostPort(s, cc.Port))
		}
		if len(r.servers) == 0 {
			return nil, fmt.Errorf("resolver: no servers configured and none in %s", resolvConf)
		}
	}
	for _, s := range cfg.Servers {
		host, port, err := net.SplitHostPort(s)
		if err != nil || net.ParseIP(host) == nil || port == "" {
			return nil, fmt.Errorf("resolver: server %q is not ip:port", s)
		}
		r.servers = append(r.servers, s)
	}
	r.udp = &dns.Client{Net: "udp", UDPSize: r.udpSize, Timeout: r.timeout}
	r.tcp = &dns.Client{Net: "tcp", Timeout: r.timeout}
	return r, nil
}

// DNSSEC reports whether queries ask for DNSSEC (DO bit), i.e. whether
// Response.AD can be trusted to mean anything.
func (r *Resolver) DNSSEC() bool { return r.dnssec }

// Servers returns the servers queried, in order.
func (r *Resolver) Servers() []string { return append([]string(nil), r.servers...) }

// Response is the outcome of Query.
type Response struct {
	Name   string   // the queried name, fully qualified
	Qtype  uint16   // the queried type
	Rcode  int      // rcode of the last answer (at the end of the CNAME chain)
	AD     bool     // every answer along the chain had the AD bit
	Answer []dns.RR // records of Qtype owned by the end of the chain
	CNAMEs []string // CNAME targets followed, in order; the last is the end of the chain
	Server string   // server that gave the last answer
}

// Target returns the name at the end of the CNAME chain.
func (resp *Response) Target() string {
	if len(resp.CNAMEs) > 0 {
		return resp.CNAMEs[len(resp.CNAMEs)-1]
	}
	return resp.Name
}

// ErrCNAMELoop is wrapped by the error Query returns when a CNAME chain loops
// or exceeds MaxCNAMEs; errors.Is finds it.
var ErrCNAMELoop = errors.New("CNAME chain loops or is longer than 8")

// Query asks for (name, qtype) and follows CNAMEs (at most MaxCNAMEs). An
// answer with any rcode (NXDOMAIN, SERVFAIL, …) is returned without error;
// the error is for transport failures, timeouts, cancellation and CNAME
// loops, always a *net.DNSError.
func (r *Resolver) Query(ctx context.Context, name string, qtype uint16) (*Response, error) {
	if _, ok := dns.IsDomainName(name); !ok || name == "" {
		return nil, &net.DNSError{Err: "invalid domain name", Name: name}
	}
	resp := &Response{Name: dns.Fqdn(name), Qtype: qtype, AD: true}
	current := resp.Name
	seen := map[string]bool{dns.CanonicalName(current): true}
	for {
		msg, server, err := r.exchange(ctx, current, qtype)
		resp.Server = server
		if err != nil {
			return nil, err
		}
		resp.Rcode = msg.Rcode
		resp.AD = resp.AD && msg.AuthenticatedData
		if msg.Rcode != dns.RcodeSuccess && msg.Rcode != dns.RcodeNameError {
			resp.Answer = nil
			return resp, nil
		}
		// Walk the chain inside this answer as far as it goes.
		for {
			var cname string
			resp.Answer = resp.Answer[:0]
			for _, rr := range msg.Answer {
				h := rr.Header()
				if !strings.EqualFold(h.Name, current) {
					continue
				}
				if h.Rrtype == qtype || qtype == dns.TypeANY {
					resp.Answer = append(resp.Answer, rr)
				} else if c, ok := rr.(*dns.CNAME); ok {
					cname = c.Target
				}
			}
			if len(resp.Answer) > 0 || cname == "" || qtype == dns.TypeCNAME {
				break
			}
			if seen[dns.CanonicalName(cname)] || len(resp.CNAMEs) >= MaxCNAMEs {
				return nil, &net.DNSError{Err: ErrCNAMELoop.Error(), Name: resp.Name, Server: server, UnwrapErr: ErrCNAMELoop}
			}
			seen[dns.CanonicalName(cname)] = true
			resp.CNAMEs = append(resp.CNAMEs, cname)
			current = cname
		}
		if len(resp.Answer) > 0 || msg.Rcode == dns.RcodeNameError || negativeAbout(msg, current) {
			return resp, nil
		}
		// The server stopped at a CNAME whose target it does not serve (an
		// authoritative server for another zone): ask for the target.
	}
}

// negativeAbout reports whether msg's negative answer covers name: name was
// the question, or the authority section holds the SOA of a zone enclosing
// name (the server chased the chain into its own zone and found nothing).
func negativeAbout(msg *dns.Msg, name string) bool {
	if len(msg.Question) == 1 && strings.EqualFold(msg.Question[0].Name, name) {
		return true
	}
	for _, rr := range msg.Ns {
		if soa, ok := rr.(*dns.SOA); ok && dns.IsSubDomain(soa.Hdr.Name, name) {
			return true
		}
	}
	return false
}
