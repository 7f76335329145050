// Package mailstore is the IMAP server of one lab mail provider: seed
// mailboxes with INBOX, a \Junk and a \Trash special-use folder, STARTTLS,
// IDLE, MOVE and UIDPLUS. It is go-imap's imapmemserver behind a session
// wrapper that adds what imapmemserver lacks (SPECIAL-USE), plus a delivery
// log the lab uses to measure the prober's accuracy.
package mailstore

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// delim is imapmemserver's hierarchy delimiter (Gmail's too).
const delim = '/'

// Config configures one provider's IMAP server.
type Config struct {
	// Addr to listen on, e.g. "127.0.0.21:0".
	Addr string
	// TLS enables STARTTLS; nil means plaintext only (tests).
	TLS *tls.Config
	// JunkFolder is the \Junk folder's name: "[Gmail]/Spam", "Bulk", "Junk".
	JunkFolder string
	// TrashFolder is the \Trash folder's name: "[Gmail]/Trash", "Trash".
	TrashFolder string
	// Logger receives server errors; nil discards them.
	Logger *slog.Logger
	// TrashAfter empties Trash the way providers do (EmptyTrash every
	// TrashAfter); 0 keeps everything.
	TrashAfter time.Duration
	// VerifyToken, when set, offers AUTHENTICATE XOAUTH2: it checks user's
	// bearer token (the lab identity platform) and returns an
	// *identity.VerifyError when it is refused.
	VerifyToken func(user, token string) error
}

// Delivery is one message the lab put into a mailbox.
type Delivery struct {
	User      string
	Folder    string
	MessageID string
	ProbeID   string // X-Otpprobe-Id, if the message had one
	At        time.Time
}

// Errors returned by the store.
var (
	ErrUnknownUser   = errors.New("mailstore: unknown user")
	ErrUnknownFolder = errors.New("mailstore: unknown folder")
)

// Server is a running IMAP server.
type Server struct {
	cfg  Config
	mem  *imapmemserver.Server
	srv  *imapserver.Server
	ln   net.Listener
	gate *gate

	mu         sync.Mutex
	users      map[string]*imapmemserver.User
	mailboxes  map[string]map[string]struct{} // user → mailbox names, mirrors imapmemserver
	deliveries []Delivery                     // the newest maxDeliveries
	delivered  int
	trashSeen  map[string]imap.UIDSet // user → UIDs in Trash at the last EmptyTrash
	done       chan struct{}
	stop       chan struct{} // closed by Close: stops the Trash emptier
}

// Start listens on cfg.Addr and serves IMAP until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		return nil, errors.New("mailstore: config: Addr is empty")
	}
	if cfg.JunkFolder == "" || cfg.TrashFolder == "" {
		return nil, errors.New("mailstore: config: JunkFolder and TrashFolder are required")
	}
	if strings.EqualFold(cfg.JunkFolder, "INBOX") || strings.EqualFold(cfg.TrashFolder, "INBOX") || cfg.JunkFolder == cfg.TrashFolder {
		return nil, fmt.Errorf("mailstore: config: junk %q and trash %q must be distinct and not INBOX", cfg.JunkFolder, cfg.TrashFolder)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("mailstore: listen %s: %w", cfg.Addr, err)
	}
	s := &Server{
		cfg:       cfg,
		mem:       imapmemserver.New(),
		ln:        ln,
		gate:      newGate(ln),
		users:     make(map[string]*imapmemserver.User),
		mailboxes: make(map[string]map[string]struct{}),
		done:      make(chan struct{}),
		stop:      make(chan struct{}),
		trashSeen: map[string]imap.UIDSet{},
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s.srv = imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &session{store: s}, nil, nil
		},
		// IMAP4rev1 clients only see rev2 features listed explicitly; IDLE,
		// UNSELECT, ENABLE, SASL-IR and LITERAL- are added by imapserver.
		Caps: imap.CapSet{
			imap.CapIMAP4rev1:    {},
			imap.CapIMAP4rev2:    {},
			imap.CapNamespace:    {},
			imap.CapUIDPlus:      {},
			imap.CapMove:         {},
			imap.CapListExtended: {},
			imap.CapListStatus:   {},
			imap.CapSpecialUse:   {},
			imap.CapChildren:     {},
		},

		TLSConfig: cfg.TLS,
		// Plain LOGIN without TLS only when the lab runs without TLS at all.
		InsecureAuth: cfg.TLS == nil,
		Logger:       slogPrintf{logger},
	})
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(s.gate)
	}()
	select { // Start returns once Serve is accepting: see gate.serving
	case <-s.gate.serving:
	case <-s.done:
	}
	if cfg.TrashAfter > 0 {
		go s.emptyTrashEvery(cfg.TrashAfter)
	}
	return s, nil
}

// Addr is the listening address, host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server and closes every connection.
func (s *Server) Close() error {
	close(s.stop)
	err := s.srv.Close()
	s.ln.Close() // imapserver closes only listeners its Serve already registered
	<-s.done
	return err
}

// AddUser creates a mailbox owner with INBOX, the junk and the trash folders.
func (s *Server) AddUser(username, password string) error {
	if username == "" || password == "" {
		return errors.New("mailstore: add user: username and password are required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[username]; ok {
		return fmt.Errorf("mailstore: add user %q: already exists", username)
	}
	u := imapmemserver.NewUser(username, password)
	names := map[string]struct{}{}
	for _, name := range []string{"INBOX", s.cfg.JunkFolder, s.cfg.TrashFolder} {
		if err := u.Create(name, nil); err != nil {
			return fmt.Errorf("mailstore: add user %q: create %q: %w", username, name, err)
		}
		names[name] = struct{}{}
	}
	s.mem.AddUser(u)
	s.users[username] = u
	s.mailboxes[username] = names
	return nil
}

// Deliver appends msg to the user's folder now and returns the append time,
// which is also the message's INTERNALDATE.
func (s *Server) Deliver(username, folder string, msg []byte) (time.Time, error) {
	s.mu.Lock()
	u, ok := s.users[username]
	s.mu.Unlock()
	if !ok {
		return time.Time{}, fmt.Errorf("%w %q", ErrUnknownUser, username)
	}
	at := time.Now()
	_, err := u.Append(folder, &literal{r: bytes.NewReader(msg), size: int64(len(msg))}, &imap.AppendOptions{Time: at})
	if err != nil {
		return time.Time{}, fmt.Errorf("%w %q for %q: %v", ErrUnknownFolder, folder, username, err)
	}
	msgID, probeID := headerIDs(msg)
	s.mu.Lock()
	s.deliveries = append(s.deliveries, Delivery{User: username, Folder: folder, MessageID: msgID, ProbeID: probeID, At: at})
	s.delivered++
	if len(s.deliveries) > maxDeliveries {
		s.deliveries = append([]Delivery(nil), s.deliveries[len(s.deliveries)-maxDeliveries/2:]...)
	}
	s.mu.Unlock()
	return at, nil
}

// Deliveries returns a copy of the delivery log, oldest first.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.deliveries...)
}

// Count is the number of messages in a user's folder; 0 if either is unknown.
func (s *Server) Count(username, folder string) int {
	s.mu.Lock()
	u, ok := s.users[username]
	s.mu.Unlock()
	if !ok {
		return 0
	}
	st, err := u.Status(folder, &imap.StatusOptions{NumMessages: true})
	if err != nil || st.NumMessages == nil {
		return 0
	}
	return int(*st.NumMessages)
}

// HasUser reports whether username has a mailbox here.
func (s *Server) HasUser(username string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.users[username]
	return ok
}

// JunkFolder is the name of the \Junk folder.
func (s *Server) JunkFolder() string { return s.cfg.JunkFolder }

// TrashFolder is the name of the \Trash folder.
func (s *Server) TrashFolder() string { return s.cfg.TrashFolder }

func (s *Server) user(username string) *imapmemserver.User {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[username]
}

// names returns the user's mailbox names, sorted.
func (s *Server) names(username string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n := range s.mailboxes[username] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (s *Server) track(username string, add, remove string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.mailboxes[username]
	if m == nil {
		return
	}
	if remove != "" {
		delete(m, remove)
	}
	if add != "" {
		m[add] = struct{}{}
	}
}

// specialUse maps a mailbox name to its RFC 6154 attribute.
func (s *Server) specialUse(name string) imap.MailboxAttr {
	switch name {
	case s.cfg.JunkFolder:
		return imap.MailboxAttrJunk
	case s.cfg.TrashFolder:
		return imap.MailboxAttrTrash
	}
	return ""
}

// literal adapts a reader to imap.LiteralReader.
type literal struct {
	r    io.Reader
	size int64
}

func (l *literal) Read(p []byte) (int, error) { return l.r.Read(p) }
func (l *literal) Size() int64                { return l.size }

// slogPrintf adapts slog to imapserver.Logger.
type slogPrintf struct{ l *slog.Logger }

func (p slogPrintf) Printf(format string, args ...any) {
	p.l.Warn("imap server", "err", fmt.Sprintf(format, args...))
}
