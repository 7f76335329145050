// Package receiver is the receiving side of the lab's mail world: the MX
// hosts of Gmail-, Yahoo- and Outlook-like providers (and the customer's own
// mailbox host), all on one shared SMTP port, each on its own loopback
// address. Every message gets real SPF, DKIM and DMARC evaluation against
// the lab DNS, Authentication-Results and Received headers in its provider's
// style, a per-profile policy decision, and delivery into the provider's
// IMAP store.
package receiver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/otpprobe/otpprobe/lab/mailstore"
)

// Host is one provider's MX host.
type Host struct {
	IP      string // loopback address, e.g. "127.0.0.21"
	Profile Profile
	Store   *mailstore.Server // where accepted mail is delivered
}

// Config configures the receivers.
type Config struct {
	Resolver Resolver    // the lab DNS; required
	TLS      *tls.Config // certificate for STARTTLS; nil disables STARTTLS
	Hosts    []Host
	// Port shared by every host; 0 picks a free one.
	Port int
	// MaxMessageBytes above which messages get 552 5.3.4 (default 10 MiB).
	MaxMessageBytes int64
	// ReadTimeout per SMTP command/data read (default 2 min).
	ReadTimeout time.Duration
	// EvalTimeout bounds SPF+DKIM+DMARC for one message (default 30 s).
	EvalTimeout time.Duration
	Logger      *slog.Logger
}

// Defaults.
const (
	DefaultMaxMessageBytes = 10 << 20
	DefaultReadTimeout     = 2 * time.Minute
	DefaultEvalTimeout     = 30 * time.Second
	maxRecipients          = 100
	portPickAttempts       = 20
)

// Faults change how a provider behaves (never its verdicts). The zero value
// is a healthy provider.
type Faults struct {
	// Greylist answers 451 4.7.1 to the first try of each message (client
	// IP + MAIL FROM + RCPT + Message-ID) and accepts retries.
	Greylist bool
	// Delay holds delivery into the mailbox after the 250.
	Delay time.Duration
	// Drop accepts with 250 and never delivers.
	Drop bool
}

// Server runs every host's SMTP listener.
type Server struct {
	cfg    Config
	port   int
	hosts  []*host
	log    *slog.Logger
	ctx    context.Context // cancelled by Close: stops evaluations and held deliveries
	cancel context.CancelFunc
	wg     sync.WaitGroup // serve loops and held deliveries

	mu     sync.Mutex
	faults map[string]Faults
	grey   map[string]struct{}
	seq    uint64
}

type host struct {
	Host
	srv *smtp.Server
	ln  net.Listener
}

// Start validates cfg, binds every host on one port and serves until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.Resolver == nil {
		return nil, errors.New("receiver: config: Resolver is nil")
	}
	if len(cfg.Hosts) == 0 {
		return nil, errors.New("receiver: config: no Hosts")
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("receiver: config: Port %d out of range", cfg.Port)
	}
	if cfg.MaxMessageBytes < 0 || cfg.ReadTimeout < 0 || cfg.EvalTimeout < 0 {
		return nil, errors.New("receiver: config: MaxMessageBytes, ReadTimeout and EvalTimeout must not be negative")
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.EvalTimeout == 0 {
		cfg.EvalTimeout = DefaultEvalTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	seenIP, seenName := map[string]bool{}, map[string]bool{}
	for i, h := range cfg.Hosts {
		ip := net.ParseIP(h.IP)
		switch {
		case ip == nil:
			return nil, fmt.Errorf("receiver: config: Hosts[%d].IP %q is not an IP address", i, h.IP)
		case h.Profile.Name == "" || h.Profile.Domain == "" || h.Profile.Hostname == "":
			return nil, fmt.Errorf("receiver: config: Hosts[%d] (%s): profile needs Name, Domain and Hostname", i, h.IP)
		case h.Store == nil:
			return nil, fmt.Errorf("receiver: config: Hosts[%d] (%s): Store is nil", i, h.Profile.Name)
		case seenIP[ip.String()]:
			return nil, fmt.Errorf("receiver: config: Hosts[%d]: IP %s used twice", i, h.IP)
		case seenName[h.Profile.Name]:
			return nil, fmt.Errorf("receiver: config: Hosts[%d]: provider %q used twice", i, h.Profile.Name)
		}
		seenIP[ip.String()], seenName[h.Profile.Name] = true, true
	}

	lns, port, err := listenShared(cfg.Hosts, cfg.Port)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, port: port, log: cfg.Logger, ctx: ctx, cancel: cancel,
		faults: map[string]Faults{}, grey: map[string]struct{}{}}
	for i, h := range cfg.Hosts {
		hh := &host{Host: h, ln: lns[i]}
		srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
			return &session{srv: s, host: hh, conn: c}, nil
		}))
		srv.Domain = h.Profile.Hostname
		srv.TLSConfig = cfg.TLS
		srv.MaxMessageBytes = cfg.MaxMessageBytes
		srv.MaxRecipients = maxRecipients
		srv.ReadTimeout = cfg.ReadTimeout
		srv.WriteTimeout = cfg.ReadTimeout
		srv.ErrorLog = slogLogger{cfg.Logger.With("provider", h.Profile.Name)}
		hh.srv = srv
		s.hosts = append(s.hosts, hh)
	}
	for _, h := range s.hosts {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = h.srv.Serve(h.ln)
		}()
	}
	return s, nil
}

// listenShared binds the same TCP port on every host's IP: the first host
// gets a free port (or the requested one) and the others must take the same;
// on a collision everything is closed and the pick starts again.
func listenShared(hosts []Host, want int) ([]net.Listener, int, error) {
	var lastErr error
	for range portPickAttempts {
		port := want
		var lns []net.Listener
		ok := true
		for _, h := range hosts {
			ln, err := net.Listen("tcp", net.JoinHostPort(h.IP, strconv.Itoa(port)))
			if err != nil {
				lastErr = fmt.Errorf("receiver: listen %s port %d: %w", h.IP, port, err)
				ok = false
				break
			}
			lns = append(lns, ln)
			port = ln.Addr().(*net.TCPAddr).Port
		}
		if ok {
			return lns, port, nil
		}
		for _, ln := range lns {
			ln.Close()
		}
		if want != 0 {
			break // a fixed port either works or it does not
		}
	}
	return nil, 0, lastErr
}

// Port is the SMTP port every host listens on.
func (s *Server) Port() int { return s.port }

// Addr is host's listening address ("127.0.0.21:2525") by provider name.
func (s *Server) Addr(provider string) (string, bool) {
	for _, h := range s.hosts {
		if h.Profile.Name == provider {
			return h.ln.Addr().String(), true
		}
	}
	return "", false
}

// Close stops accepting, closes connections and abandons held deliveries
// (as a crashed MX would lose them).
func (s *Server) Close() error {
	s.mu.Lock()
	s.cancel() // under mu: hold() adds to wg only while not cancelled
	s.mu.Unlock()
	var errs []error
	for _, h := range s.hosts {
		if err := h.srv.Close(); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			errs = append(errs, err)
		}
		// go-smtp's Close closes only the listeners Serve has registered; a
		// Serve goroutine that has not started yet would then block in
		// Accept for ever. Closing ours makes it return whenever it starts.
		h.ln.Close()
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

// SetFaults replaces a provider's faults; the zero Faults heals it.
func (s *Server) SetFaults(provider string, f Faults) error {
	if _, ok := s.Addr(provider); !ok {
		return fmt.Errorf("receiver: set faults: unknown provider %q", provider)
	}
	if f.Delay < 0 {
		return fmt.Errorf("receiver: set faults for %s: negative delay %v", provider, f.Delay)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == (Faults{}) {
		delete(s.faults, provider)
	} else {
		s.faults[provider] = f
	}
	return nil
}

// Faults returns a provider's current faults.
func (s *Server) Faults(provider string) Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults[provider]
}

// greylisted records key and reports whether this is its first try.
func (s *Server) greylisted(keys []string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.grey) > 100_000 {
		clear(s.grey) // bounded memory; forgetting only means one more 451
	}
	first := false
	for _, k := range keys {
		if _, ok := s.grey[k]; !ok {
			s.grey[k] = struct{}{}
			first = true
		}
	}
	return first
}

func (s *Server) nextSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return s.seq
}

// slogLogger adapts slog to go-smtp's Logger.
type slogLogger struct{ l *slog.Logger }

func (l slogLogger) Printf(format string, v ...any) {
	l.l.Warn("smtp server", "err", fmt.Sprintf(format, v...))
}
func (l slogLogger) Println(v ...any) { l.l.Warn("smtp server", "err", fmt.Sprint(v...)) }
