// Package forwarder is the lab's mailing-list forwarder: it accepts mail
// for a list address, records what it found (Authentication-Results and
// an ARC set, RFC 8617), tags the Subject as list software does, which
// breaks the author's DKIM signature, and re-sends the message from its own
// address to every member's MX. Receivers then see DMARC fail and must rely
// on ARC — the path real OTP mail takes through forwarding and lists.
package forwarder

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/otpprobe/otpprobe/verify"
)

// Resolver is the DNS the forwarder evaluates and routes with
// (verify/resolver.Resolver fits). Errors must be *net.DNSError.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// Config configures a forwarder.
type Config struct {
	// IP is the forwarder's loopback address: it listens there on Port
	// and re-sends from there (so SPF sees the forwarder, not the author).
	IP   string
	Port int // the world's shared MX port
	// Hostname is the MX host name (greeting, Received, EHLO).
	Hostname string
	// Domain is the list domain; AuthservID defaults to it.
	Domain     string
	AuthservID string
	// Lists maps a list's local part to its members' addresses.
	Lists map[string][]string
	// SubjectTag is prefixed to the Subject ("[list]"); empty leaves the
	// Subject alone (a plain forwarder that keeps DKIM intact).
	SubjectTag string
	// Sealer adds the ARC set; required.
	Sealer   *verify.ARCSealer
	Resolver Resolver
	TLS      *tls.Config    // server certificate for STARTTLS
	RootCAs  *x509.CertPool // verifies the members' MX hosts
	// MaxMessageBytes defaults to 10 MiB; Timeout bounds one forward
	// (evaluation and relay), default 30 s.
	MaxMessageBytes int64
	Timeout         time.Duration
	Logger          *slog.Logger
}

// Server is a running forwarder.
type Server struct {
	cfg  Config
	srv  *smtp.Server
	ln   net.Listener
	log  *slog.Logger
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// Start validates cfg and serves SMTP on cfg.IP:cfg.Port until Close.
func Start(cfg Config) (*Server, error) {
	switch {
	case net.ParseIP(cfg.IP) == nil:
		return nil, fmt.Errorf("forwarder: config: IP %q is not an IP address", cfg.IP)
	case cfg.Port <= 0 || cfg.Port > 65535:
		return nil, fmt.Errorf("forwarder: config: Port %d out of range", cfg.Port)
	case cfg.Hostname == "" || cfg.Domain == "":
		return nil, errors.New("forwarder: config: Hostname and Domain are required")
	case len(cfg.Lists) == 0:
		return nil, errors.New("forwarder: config: no Lists")
	case cfg.Sealer == nil:
		return nil, errors.New("forwarder: config: Sealer is nil")
	case cfg.Resolver == nil:
		return nil, errors.New("forwarder: config: Resolver is nil")
	case cfg.MaxMessageBytes < 0 || cfg.Timeout < 0:
		// go-smtp reads a negative limit as "none"; a negative timeout
		// would fail every forward at once.
		return nil, fmt.Errorf("forwarder: config: MaxMessageBytes %d and Timeout %v must not be negative", cfg.MaxMessageBytes, cfg.Timeout)
	}
	if cfg.AuthservID == "" {
		cfg.AuthservID = cfg.Domain
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = 10 << 20
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.IP, strconv.Itoa(cfg.Port)))
	if err != nil {
		return nil, fmt.Errorf("forwarder: listen: %w", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, ln: ln, log: cfg.Logger, ctx: ctx, stop: stop}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{s: s, conn: c}, nil
	}))
	srv.Domain = cfg.Hostname
	srv.TLSConfig = cfg.TLS
	srv.MaxMessageBytes = cfg.MaxMessageBytes
	srv.MaxRecipients = 100
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	s.srv = srv
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = srv.Serve(ln)
	}()
	return s, nil
}

// Addr is the listening address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server and any forward in progress.
func (s *Server) Close() error {
	s.stop()
	err := s.srv.Close()
	s.ln.Close() // go-smtp closes only listeners its Serve already registered
	s.wg.Wait()
	return err
}

// session is one inbound SMTP session.
type session struct {
	s       *Server
	conn    *smtp.Conn
	from    string
	members []string
}

func (ss *session) Reset()        { ss.from, ss.members = "", nil }
func (ss *session) Logout() error { return nil }

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	local, domain, ok := strings.Cut(to, "@")
	members, known := ss.s.cfg.Lists[strings.ToLower(local)]
	if !ok || !strings.EqualFold(domain, ss.s.cfg.Domain) || !known {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such list: " + to}
	}
	ss.members = append(ss.members, members...)
	return nil
}

// Data forwards the message before answering, so a member's MX refusal
// reaches the author's sending service as this reply (which then bounces
// it): the lab forwarder keeps no queue of its own.
func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if len(ss.members) == 0 {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "No valid recipients"}
	}
	ctx, cancel := context.WithTimeout(ss.s.ctx, ss.s.cfg.Timeout)
	defer cancel()
	return ss.s.forward(ctx, ss.conn, ss.from, ss.members, raw)
}
