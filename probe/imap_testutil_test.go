package probe

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"

	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/lab/mailstore"
	"github.com/otpprobe/otpprobe/targets"
)

const (
	testUser     = "seed@gmail.lab"
	testPassword = "s3cret-Pa55word-never-logged"
	testJunk     = "[Gmail]/Spam"
	testTrash    = "[Gmail]/Trash"
	// waitLong bounds every wait in these tests: generous, because the
	// machine is shared; nothing asserts speed.
	waitLong = 20 * time.Second
)

// world is a lab provider (lab/mailstore) with STARTTLS from a lab CA,
// optionally reached through a proxy that can cut connections.
type world struct {
	t      testing.TB
	ca     *lab.CA
	caFile string
	store  *mailstore.Server
	proxy  *dropProxy
}

func newWorld(t *testing.T) *world { return newWorldTB(t) }

func newWorldTB(t testing.TB) *world {
	t.Helper()
	ca, err := lab.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := ca.ServerTLS("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	st, err := mailstore.Start(mailstore.Config{Addr: "127.0.0.1:0", TLS: tlsCfg, JunkFolder: testJunk, TrashFolder: testTrash})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.AddUser(testUser, testPassword); err != nil {
		t.Fatal(err)
	}
	return &world{t: t, ca: ca, caFile: writeCA(t, ca), store: st}
}

func writeCA(t testing.TB, ca *lab.CA) string {
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, ca.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// withProxy routes the watcher through a proxy the test can cut.
func (w *world) withProxy() *world {
	w.proxy = newDropProxy(w.t, w.store.Addr())
	return w
}

func (w *world) mailbox() targets.Mailbox {
	addr := w.store.Addr()
	if w.proxy != nil {
		addr = w.proxy.addr()
	}
	return mailboxAt(addr, w.caFile)
}

func mailboxAt(addr, caFile string) targets.Mailbox {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return targets.Mailbox{
		Name: "gmail-seed", Provider: "gmail", Address: testUser,
		Endpoint: targets.Endpoint{Host: host, Port: p, TLS: targets.TLSStartTLS, CAFile: caFile},
		Auth:     targets.Auth{Mechanism: targets.AuthPlain, Username: testUser},
	}
}

func staticCreds(user, secret string) Credentials {
	return func(context.Context) (string, string, error) { return user, secret, nil }
}

// client is the "second client": a plain imapclient over STARTTLS, the way
// a sender's relay or a human would touch the mailbox.
func (w *world) client() *imapclient.Client {
	w.t.Helper()
	c, err := imapclient.DialStartTLS(w.store.Addr(), &imapclient.Options{TLSConfig: tlsTo(w.ca)})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { c.Close() })
	if err := c.Login(testUser, testPassword).Wait(); err != nil {
		w.t.Fatal(err)
	}
	return c
}

func (w *world) deliver(folder string, msg []byte) {
	w.t.Helper()
	if _, err := w.store.Deliver(testUser, folder, msg); err != nil {
		w.t.Fatal(err)
	}
}

// messages lists UID → header of a folder, fetched with BODY.PEEK, plus
// each message's flags.
func (w *world) messages(c *imapclient.Client, folder string) map[imap.UID]fetched {
	w.t.Helper()
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[imap.UID]fetched{}
	if sel.NumMessages == 0 {
		return out
	}
	sec := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}
	all := imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}
	bufs, err := c.Fetch(all, &imap.FetchOptions{UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
	if err != nil {
		w.t.Fatal(err)
	}
	for _, b := range bufs {
		out[b.UID] = fetched{header: string(b.FindBodySection(sec)), flags: b.Flags}
	}
	return out
}

type fetched struct {
	header string
	flags  []imap.Flag
}

func tlsTo(ca *lab.CA) *tls.Config { return &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"} }

// canaryMsg is a canary as the composer builds it: token in X-Otpprobe-Id
// and in the Subject.
func canaryMsg(token string) []byte {
	return []byte("From: OTP <no-reply@m365.lab>\r\nTo: " + testUser + "\r\n" +
		"Subject: Your verification code is 483920 [" + token + "]\r\n" +
		"X-Otpprobe-Id: " + token + "\r\n" +
		"Message-ID: <" + token + "@m365.lab>\r\n" +
		"Date: " + time.Now().Format(time.RFC1123Z) + "\r\n\r\nYour verification code is 483920\r\n")
}

// subjectOnlyMsg is a canary whose custom header a provider dropped.
func subjectOnlyMsg(token string) []byte {
	return []byte("From: OTP <no-reply@m365.lab>\r\nTo: " + testUser + "\r\n" +
		"Subject: =?UTF-8?Q?V=C3=A9rification_483920?= [" + token + "]\r\n" +
		"Message-ID: <" + token + "@m365.lab>\r\n\r\nbody\r\n")
}

func otherMsg(subject string) []byte {
	return []byte("From: friend@example.org\r\nTo: " + testUser + "\r\nSubject: " + subject + " [not-a-canary]\r\n" +
		"Message-ID: <" + strings.ReplaceAll(subject, " ", "-") + "@example.org>\r\n\r\nhello\r\n")
}

// collector registers pending tokens and records arrivals.
type collector struct {
	mu       sync.Mutex
	pending  map[string]bool
	arrivals []Arrival
	ch       chan Arrival
}

func newCollector(tokens ...string) *collector {
	c := &collector{pending: map[string]bool{}, ch: make(chan Arrival, 1024)}
	c.add(tokens...)
	return c
}

func (c *collector) add(tokens ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range tokens {
		c.pending[t] = true
	}
}

func (c *collector) match(tok string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending[tok]
}

func (c *collector) deliver(a Arrival) {
	c.mu.Lock()
	c.arrivals = append(c.arrivals, a)
	c.mu.Unlock()
	c.ch <- a
}

func (c *collector) count(tok string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, a := range c.arrivals {
		if a.Token == tok {
			n++
		}
	}
	return n
}

func (c *collector) next(t *testing.T) Arrival {
	t.Helper()
	select {
	case a := <-c.ch:
		return a
	case <-time.After(waitLong):
		t.Fatalf("no arrival within %v", waitLong)
		return Arrival{}
	}
}

// runWatcher starts w.Run and stops it at the end of the test.
func runWatcher(t *testing.T, w *Watcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitLong):
			t.Errorf("Run did not return after cancel")
		}
	})
}

// eventually polls cond until it holds or waitLong passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logBuffer captures a watcher's log lines for secret checks.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// dropProxy forwards TCP to a server and can cut every connection and
// refuse new ones, like a provider restarting or a NAT dropping state.
type dropProxy struct {
	t      testing.TB
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
	// cutOn, when set, cuts every connection as soon as a client sends a
	// chunk containing it (plaintext only), without forwarding the chunk:
	// a server dying mid-command.
	cutOn string
	// frozen drops all traffic without closing anything: a server (or a
	// middlebox) that silently stops answering.
	frozen bool
}

func (p *dropProxy) freeze(on bool) {
	p.mu.Lock()
	p.frozen = on
	p.mu.Unlock()
}

func newDropProxy(t testing.TB, target string) *dropProxy {
	return newDropProxyOn(t, "127.0.0.1", target)
}

// newDropProxyOn listens on host, e.g. the server's own address so that its
// certificate still matches.
func newDropProxyOn(t testing.TB, host, target string) *dropProxy {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{t: t, ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); p.cut(true) })
	go p.serve()
	return p
}

func (p *dropProxy) addr() string { return p.ln.Addr().String() }

func (p *dropProxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			in.Close()
			continue
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns[in], p.conns[out] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go func() { p.forward(out, in, true); out.Close() }()
		go func() { p.forward(in, out, false); in.Close() }()
	}
}

// forward copies one direction, cutting on cutOn (client to server) and
// dropping everything while frozen.
func (p *dropProxy) forward(out, in net.Conn, fromClient bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			p.mu.Lock()
			trigger := fromClient && p.cutOn != "" && bytes.Contains(buf[:n], []byte(p.cutOn))
			if trigger {
				p.cutOn = ""
			}
			frozen := p.frozen
			p.mu.Unlock()
			if trigger {
				p.cut(false)
				return
			}
			if frozen {
				continue
			}
			if _, err := out.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cutWhen arms a one-shot cut on the next client chunk containing s.
func (p *dropProxy) cutWhen(s string) {
	p.mu.Lock()
	p.cutOn = s
	p.mu.Unlock()
}

// cut closes every proxied connection; with down, new ones are refused
// until up is called.
func (p *dropProxy) cut(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *dropProxy) up() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// plainServer is bare imapmemserver behind imapserver, for what the lab
// mailstore deliberately does not do: LIST without special-use attributes
// (or only on RETURN (SPECIAL-USE)) and XOAUTH2.
type plainServer struct {
	addr    string
	mem     *imapmemserver.Server
	user    *imapmemserver.User
	folders []string
	roles   map[string]imap.MailboxAttr
	// returnOnly writes role attributes only when asked with RETURN
	// (SPECIAL-USE); otherwise they are never written.
	returnOnly bool
	token      string // accepted XOAUTH2 token; "" disables XOAUTH2
}

func startPlain(t *testing.T, ps *plainServer) *plainServer {
	t.Helper()
	ps.mem = imapmemserver.New()
	ps.user = imapmemserver.NewUser(testUser, testPassword)
	for _, f := range ps.folders {
		if err := ps.user.Create(f, nil); err != nil {
			t.Fatal(err)
		}
	}
	ps.mem.AddUser(ps.user)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &plainSession{SessionIMAP4rev2: ps.mem.NewSession().(imapserver.SessionIMAP4rev2), ps: ps}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: true,
		Logger:       discardPrintf{},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	al := &acceptingListener{Listener: ln, accepting: make(chan struct{})}
	go srv.Serve(al)
	<-al.accepting // before any Close: see acceptingListener
	t.Cleanup(func() { srv.Close() })
	ps.addr = ln.Addr().String()
	return ps
}

// mailbox is a plaintext mailbox config (tls: none needs insecure).
func (ps *plainServer) mailbox() targets.Mailbox {
	mb := mailboxAt(ps.addr, "")
	mb.TLS, mb.Insecure = targets.TLSNone, true
	return mb
}

type discardPrintf struct{}

func (discardPrintf) Printf(string, ...any) {}

type plainSession struct {
	imapserver.SessionIMAP4rev2
	ps *plainServer
}

func (s *plainSession) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	for _, name := range s.ps.folders {
		match := false
		for _, p := range patterns {
			match = match || imapserver.MatchList(name, '/', ref, p)
		}
		if !match {
			continue
		}
		var attrs []imap.MailboxAttr
		if role := s.ps.roles[name]; role != "" && (!s.ps.returnOnly || options.ReturnSpecialUse) {
			attrs = append(attrs, role)
		}
		if err := w.WriteList(&imap.ListData{Mailbox: name, Delim: '/', Attrs: attrs}); err != nil {
			return err
		}
	}
	return nil
}

func (s *plainSession) AuthenticateMechanisms() []string {
	if s.ps.token != "" {
		return []string{"PLAIN", "XOAUTH2"}
	}
	return []string{"PLAIN"}
}

func (s *plainSession) Authenticate(mech string) (sasl.Server, error) {
	switch mech {
	case "PLAIN":
		return sasl.NewPlainServer(func(_, user, pass string) error { return s.Login(user, pass) }), nil
	case "XOAUTH2":
		if s.ps.token != "" {
			return &xoauth2Server{s: s}, nil
		}
	}
	return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "SASL mechanism not supported"}
}

// xoauth2Server checks "user=U\x01auth=Bearer T\x01\x01"; a bad token gets
// the JSON error challenge, then NO, as Gmail does.
type xoauth2Server struct {
	s      *plainSession
	failed bool
}

func (x *xoauth2Server) Next(resp []byte) ([]byte, bool, error) {
	if x.failed {
		return nil, true, imapserver.ErrAuthFailed
	}
	if resp == nil {
		return []byte{}, false, nil
	}
	parts := strings.Split(string(resp), "\x01")
	if len(parts) == 4 && parts[0] == "user="+testUser && parts[1] == "auth=Bearer "+x.s.ps.token {
		return nil, true, x.s.Login(testUser, testPassword)
	}
	x.failed = true
	return []byte(`{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`), false, nil
}

// appendRaw appends msg to folder from a second client.
func appendRaw(t *testing.T, c *imapclient.Client, folder string, msg []byte, flags []imap.Flag) {
	t.Helper()
	cmd := c.Append(folder, int64(len(msg)), &imap.AppendOptions{Flags: flags})
	if _, err := cmd.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

func dialPlain(t *testing.T, ps *plainServer) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(ps.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(testUser, testPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

func countMessages(t *testing.T, ps *plainServer, folder string) int {
	t.Helper()
	st, err := ps.user.Status(folder, &imap.StatusOptions{NumMessages: true})
	if err != nil {
		t.Fatal(err)
	}
	return int(*st.NumMessages)
}

// acceptingListener closes accepting at its first Accept. go-imap v2's
// Server.Serve adds to its WaitGroup only after registering the listener,
// so a Close before Serve reached Accept races with that Add.
type acceptingListener struct {
	net.Listener
	once      sync.Once
	accepting chan struct{}
}

func (l *acceptingListener) Accept() (net.Conn, error) {
	l.once.Do(func() { close(l.accepting) })
	return l.Listener.Accept()
}
