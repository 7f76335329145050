// Package sender is a sending service of the lab world: a submission
// listener (STARTTLS, AUTH PLAIN/LOGIN, a SendAs check) that DKIM-signs and
// queues mail, and a relay that delivers it to the recipients' MX hosts from
// its own source address, retrying 4xx replies and returning RFC 3464 DSNs
// for failures. The world runs two: "m365" (Exchange Online-like) and
// "backup" (a plain relay).
package sender

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// Stats are the service's counters since Start.
type Stats struct {
	Submitted    uint64 `json:"submitted"`     // messages accepted with 250 after DATA
	Rejected     uint64 `json:"rejected"`      // submissions refused (SendAs, malformed)
	AuthFailures uint64 `json:"auth_failures"` // failed AUTH exchanges
	Dropped      uint64 `json:"dropped"`       // accepted, then lost (LossRate fault)
	Relayed      uint64 `json:"relayed"`       // recipients accepted by the remote MTA (DSNs included)
	Deferred     uint64 `json:"deferred"`      // recipient attempts that will be retried
	Bounced      uint64 `json:"bounced"`       // recipients failed for good
	DSNs         uint64 `json:"dsns"`          // DSN messages generated
}

type counters struct {
	submitted, rejected, authFailures, dropped, relayed, deferred, bounced, dsns atomic.Uint64
}

// Server is one running sending service.
type Server struct {
	cfg      Config
	log      *slog.Logger
	sourceIP net.IP
	addr     string // resolved listen address, kept across outages

	queue  *queue
	stats  counters
	ctx    context.Context // ends at Close: stops workers and attempts
	cancel context.CancelFunc
	wg     sync.WaitGroup

	outage atomic.Int32 // OutageMode, read by the listener for 421

	mu       sync.Mutex // guards the fields below
	faults   Faults
	smtpSrv  *smtp.Server // nil while refusing connections
	ln       net.Listener // smtpSrv's listener
	closed   bool
	lossRand *mrand.Rand
}

// Start validates cfg, listens and starts the relay workers.
func Start(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger.With("sender", cfg.Name),
		sourceIP: net.ParseIP(cfg.SourceIP),
		queue:    newQueue(),
		ctx:      ctx,
		cancel:   cancel,
		lossRand: mrand.New(cfg.LossSource),
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("sender %s: listen: %w", cfg.Name, err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	for range cfg.Workers {
		s.wg.Go(func() { s.work(ctx) })
	}
	s.log.Info("sender started", "addr", s.addr, "source_ip", cfg.SourceIP)
	return s, nil
}

// serve starts a fresh go-smtp server on ln (a stopped one cannot be
// restarted). Called with s.mu held or before s is shared.
func (s *Server) serve(ln net.Listener) {
	srv := smtp.NewServer(backend{s})
	srv.Domain = s.cfg.Hostname
	srv.TLSConfig = s.cfg.TLS
	srv.MaxMessageBytes = s.cfg.MaxMessageBytes
	srv.MaxRecipients = 100
	srv.ReadTimeout = 60 * time.Second
	srv.WriteTimeout = 60 * time.Second
	srv.ErrorLog = slogAdapter{s.log}
	s.smtpSrv, s.ln = srv, ln
	l := &outageListener{Listener: ln, mode: &s.outage}
	s.wg.Go(func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Error("submission listener stopped", "err", err)
		}
	})
}

// stopListening closes the listener and every open session. The listener
// is closed here too: go-smtp only closes listeners its Serve has already
// registered, and Serve may not have started yet. Called with s.mu held.
func (s *Server) stopListening() error {
	if s.smtpSrv == nil {
		return nil
	}
	err := s.ln.Close()
	s.smtpSrv.Close()
	s.smtpSrv, s.ln = nil, nil
	return err
}

// Addr is the submission listener's address, "ip:port".
func (s *Server) Addr() string { return s.addr }

// QueueLen is the number of deliveries (message × recipient domain) not
// yet delivered or bounced.
func (s *Server) QueueLen() int { return s.queue.len() }

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		Submitted: c.submitted.Load(), Rejected: c.rejected.Load(), AuthFailures: c.authFailures.Load(),
		Dropped: c.dropped.Load(), Relayed: c.relayed.Load(), Deferred: c.deferred.Load(),
		Bounced: c.bounced.Load(), DSNs: c.dsns.Load(),
	}
}

// Faults returns the faults in force.
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// SetFaults changes the service's faults. OutageRefuse closes the listener
// (and open sessions); leaving it reopens the same address.
func (s *Server) SetFaults(f Faults) error {
	if f.LossRate < 0 || f.LossRate > 1 {
		return fmt.Errorf("sender %s: LossRate %v out of range 0..1", s.cfg.Name, f.LossRate)
	}
	if f.Outage < OutageNone || f.Outage > Outage421 {
		return fmt.Errorf("sender %s: unknown outage mode %d", s.cfg.Name, f.Outage)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("sender %s: closed", s.cfg.Name)
	}
	var ln net.Listener
	if f.Outage != OutageRefuse && s.smtpSrv == nil {
		var err error
		if ln, err = net.Listen("tcp", s.addr); err != nil {
			return fmt.Errorf("sender %s: reopen %s: %w", s.cfg.Name, s.addr, err)
		}
	}
	s.outage.Store(int32(f.Outage)) // before reopening: no session slips through a 421 outage
	if f.Outage == OutageRefuse && s.smtpSrv != nil {
		s.stopListening()
	}
	if ln != nil {
		s.serve(ln)
	}
	if f != s.faults {
		s.log.Info("faults changed", "outage", f.Outage.String(), "loss_rate", f.LossRate)
	}
	s.faults = f
	return nil
}

// lose reports whether the loss fault eats this message.
func (s *Server) lose() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults.LossRate > 0 && s.lossRand.Float64() < s.faults.LossRate
}

// Close stops listening, stops the relay and drops the queue.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	err := s.stopListening()
	s.mu.Unlock()
	s.cancel()
	s.queue.close()
	s.wg.Wait()
	return err
}

// newQueueID returns a queue ID in the service's style: Exchange's numeric
// InternalId, or a Postfix-like hex ID.
func (s *Server) newQueueID() string {
	var b [8]byte
	rand.Read(b[:])
	if s.cfg.Style == StyleM365 {
		return fmt.Sprintf("%d", binary.BigEndian.Uint64(b[:])%9e13+1e13)
	}
	return strings.ToUpper(hex.EncodeToString(b[:5]))
}
