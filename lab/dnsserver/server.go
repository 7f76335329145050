// Package dnsserver is the lab world's authoritative DNS server: one flat,
// editable record store answered over UDP and TCP on one loopback port, with
// per-name fault injection (SERVFAIL, NXDOMAIN, timeout, REFUSED).
package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Server is an authoritative DNS server for every name it holds. All methods
// are safe for concurrent use, also while queries are being answered.
type Server struct {
	udp, tcp *dns.Server
	addr     string
	closeErr error
	once     sync.Once
	queries  atomic.Uint64

	mu     sync.RWMutex
	zone   *store
	faults map[string]Fault
}

// Start listens on addr (e.g. "127.0.0.1:0") with UDP and then TCP on the
// same port, and returns once both are serving.
func Start(addr string) (*Server, error) {
	s := &Server{zone: newStore(), faults: make(map[string]Fault)}
	pc, l, err := listenBoth(addr)
	if err != nil {
		return nil, err
	}
	s.addr = pc.LocalAddr().String()

	started := make(chan struct{}, 2)
	failed := make(chan error, 2)
	notify := func() { started <- struct{}{} }
	handler := dns.HandlerFunc(s.serveDNS)
	s.udp = &dns.Server{PacketConn: pc, Handler: handler, NotifyStartedFunc: notify, UDPSize: maxUDPSize}
	s.tcp = &dns.Server{Listener: l, Handler: handler, NotifyStartedFunc: notify,
		ReadTimeout: 10 * time.Second, IdleTimeout: func() time.Duration { return 10 * time.Second }}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		go func() {
			if err := srv.ActivateAndServe(); err != nil {
				failed <- err
			}
		}()
	}
	for range 2 {
		select {
		case <-started:
		case err := <-failed:
			pc.Close()
			l.Close()
			return nil, fmt.Errorf("dnsserver: serve %s: %w", s.addr, err)
		case <-time.After(10 * time.Second):
			pc.Close()
			l.Close()
			return nil, fmt.Errorf("dnsserver: serve %s: not started after 10s", s.addr)
		}
	}
	return s, nil
}

// listenBoth binds UDP, then TCP on the same port. With port 0 the kernel
// picks a UDP port whose TCP twin may be taken, so it tries a few times.
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dnsserver: bad listen address %q: %w", addr, err)
	}
	tries := 1
	if port == "0" {
		tries = 10
	}
	for i := 0; ; i++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dnsserver: listen udp %s: %w", addr, err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
		if i+1 >= tries {
			return nil, nil, fmt.Errorf("dnsserver: listen tcp %s: %w", pc.LocalAddr(), err)
		}
	}
}

// Addr returns "ip:port", the same port for UDP and TCP.
func (s *Server) Addr() string { return s.addr }

// Close stops both listeners. Further calls return the first result.
func (s *Server) Close() error {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.closeErr = errors.Join(s.udp.ShutdownContext(ctx), s.tcp.ShutdownContext(ctx))
	})
	return s.closeErr
}

// Queries returns how many queries the server has received (including ones
// it dropped because of FaultTimeout).
func (s *Server) Queries() uint64 { return s.queries.Load() }

// Add parses one zone-file line (owner must be fully qualified) and appends
// it to its RRset; an identical record is not added twice.
func (s *Server) Add(rr string) error {
	r, err := parseRR(rr)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zone.add(r)
	return nil
}

// Set replaces the RRset (name, qtype) with rrs; no rrs deletes it. Every
// record must have that owner and type.
func (s *Server) Set(name string, qtype uint16, rrs ...string) error {
	key := canonical(name)
	parsed := make([]dns.RR, 0, len(rrs))
	for _, line := range rrs {
		r, err := parseRR(line)
		if err != nil {
			return err
		}
		if canonical(r.Header().Name) != key || r.Header().Rrtype != qtype {
			return fmt.Errorf("dnsserver: Set %s %s: record %q has another owner or type",
				name, dns.TypeToString[qtype], line)
		}
		parsed = append(parsed, r)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zone.remove(key, qtype)
	for _, r := range parsed {
		s.zone.add(r)
	}
	return nil
}

// Remove deletes the RRset (name, qtype); dns.TypeANY deletes all of name's.
func (s *Server) Remove(name string, qtype uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zone.remove(canonical(name), qtype)
}

// SetFault makes queries for exactly name (and CNAME chains passing through
// it) misbehave; FaultNone clears it.
func (s *Server) SetFault(name string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == FaultNone {
		delete(s.faults, canonical(name))
		return
	}
	s.faults[canonical(name)] = f
}

// Faults returns a copy of the active faults by canonical name.
func (s *Server) Faults() map[string]Fault {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]Fault, len(s.faults))
	for k, v := range s.faults {
		out[k] = v
	}
	return out
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.faults)
}

// Records returns a sorted copy of every record held.
func (s *Server) Records() []dns.RR {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.zone.all()
}

// Load replaces every record with rrs and clears all faults. On a parse
// error nothing changes.
func (s *Server) Load(rrs []string) error {
	z := newStore()
	for _, line := range rrs {
		r, err := parseRR(line)
		if err != nil {
			return err
		}
		z.add(r)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zone = z
	clear(s.faults)
	return nil
}
