package sender_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/lab/dnsserver"
	"github.com/otpprobe/otpprobe/lab/sender"
)

const (
	testUser     = lab.SenderUsername
	testPassword = "s3cret-submission-pass"
	testHostname = "mail.protection.outlook.test"
)

var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
)

func dkimKey(t testing.TB) *rsa.PrivateKey {
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		testKey = k
	})
	return testKey
}

// world is a small mail world for the tests: the lab DNS server, a CA, and
// receivers on one shared "port 25".
type world struct {
	t        testing.TB
	ca       *lab.CA
	dns      *dnsserver.Server
	resolver *net.Resolver
	port     int
	logs     *syncBuffer
}

func newWorld(t testing.TB) *world {
	t.Helper()
	ca, err := lab.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	d, err := dnsserver.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	dnsAddr := d.Addr()
	w := &world{t: t, ca: ca, dns: d, logs: &syncBuffer{}}
	w.resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var dd net.Dialer
		return dd.DialContext(ctx, network, dnsAddr)
	}}
	// Pick the shared MX port: free on one receiver address; the others
	// are distinct IPs, so the same port is free there too.
	ln, err := net.Listen("tcp", lab.GmailIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	w.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return w
}

func (w *world) dnsAdd(rrs ...string) {
	w.t.Helper()
	for _, rr := range rrs {
		if err := w.dns.Add(rr); err != nil {
			w.t.Fatalf("dns add %q: %v", rr, err)
		}
	}
}

// sender starts a sending service on the m365 addresses.
func (w *world) sender(mod func(*sender.Config)) *sender.Server {
	w.t.Helper()
	tlsCfg, err := w.ca.ServerTLS("smtp.office365.test", lab.M365IP)
	if err != nil {
		w.t.Fatal(err)
	}
	cfg := sender.Config{
		Name:              lab.SenderM365,
		ListenAddr:        lab.M365IP + ":0",
		SourceIP:          lab.M365IP,
		Hostname:          testHostname,
		Style:             sender.StyleM365,
		TLS:               tlsCfg,
		RootCAs:           w.ca.Pool(),
		Username:          testUser,
		Password:          testPassword,
		AllowedFromDomain: lab.CustomerDomain,
		DKIM:              sender.DKIMConfig{Domain: lab.CustomerDomain, Selector: lab.M365ActiveSelector, Signer: dkimKey(w.t)},
		Resolver:          w.resolver,
		MXPort:            w.port,
		RetryInterval:     20 * time.Millisecond,
		RetryExpiry:       10 * time.Second,
		AttemptTimeout:    10 * time.Second,
		Logger:            slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := sender.Start(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { s.Close() })
	return s
}

// received is one message a receiver accepted.
type received struct {
	remoteIP string
	helo     string
	tls      bool
	from     string
	rcpts    []string
	data     []byte
}

// receiver is a recording MX with injectable errors (after maddy's
// testutils.SMTPBackend).
type receiver struct {
	mu       sync.Mutex
	msgs     []received
	rcptErr  map[string]error
	dataErrs []error       // consumed one per DATA; nil entries accept
	dataErr  error         // used when dataErrs is exhausted
	arrived  chan struct{} // capacity 1: "a message arrived since the last look"

}

// mx starts a receiver for host (an MX name) at ip and publishes the MX
// and A records for domain.
func (w *world) mx(domain, host, ip string) *receiver {
	w.t.Helper()
	w.dnsAdd(
		fmt.Sprintf("%s. 300 IN MX 10 %s.", domain, host),
		fmt.Sprintf("%s. 300 IN A %s", host, ip),
	)
	return w.listen(host, ip)
}

// listen starts a receiver with a certificate for host at ip.
func (w *world) listen(host, ip string) *receiver {
	w.t.Helper()
	tlsCfg, err := w.ca.ServerTLS(host, ip)
	if err != nil {
		w.t.Fatal(err)
	}
	r := &receiver{rcptErr: map[string]error{}, arrived: make(chan struct{}, 1)}
	srv := smtp.NewServer(r)
	srv.Domain = host
	srv.TLSConfig = tlsCfg
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.ErrorLog = slogErrLog{}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(w.port)))
	if err != nil {
		w.t.Fatal(err)
	}
	go srv.Serve(ln)
	w.t.Cleanup(func() { srv.Close() })
	return r
}

type slogErrLog struct{}

func (slogErrLog) Printf(string, ...any) {}
func (slogErrLog) Println(...any)        {}

func (r *receiver) NewSession(c *smtp.Conn) (smtp.Session, error) {
	ip, _, _ := net.SplitHostPort(c.Conn().RemoteAddr().String())
	_, isTLS := c.TLSConnectionState()
	return &rsession{r: r, cur: received{remoteIP: ip, helo: c.Hostname(), tls: isTLS}}, nil
}

type rsession struct {
	r   *receiver
	cur received
}

func (s *rsession) Mail(from string, _ *smtp.MailOptions) error { s.cur.from = from; return nil }
func (s *rsession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.r.mu.Lock()
	err := s.r.rcptErr[to]
	s.r.mu.Unlock()
	if err != nil {
		return err
	}
	s.cur.rcpts = append(s.cur.rcpts, to)
	return nil
}
func (s *rsession) Data(rd io.Reader) error {
	b, err := io.ReadAll(rd)
	if err != nil {
		return err
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	var derr error
	if len(s.r.dataErrs) > 0 {
		derr, s.r.dataErrs = s.r.dataErrs[0], s.r.dataErrs[1:]
	} else {
		derr = s.r.dataErr
	}
	if derr != nil {
		return derr
	}
	m := s.cur
	m.rcpts = append([]string(nil), s.cur.rcpts...)
	m.data = b
	s.r.msgs = append(s.r.msgs, m)
	select { // a wake-up token for wait; one pending token is enough
	case s.r.arrived <- struct{}{}:
	default:
	}
	return nil
}
func (s *rsession) Reset()        { s.cur.from, s.cur.rcpts = "", nil }
func (s *rsession) Logout() error { return nil }

// wait returns the n-th message (1-based) once it has arrived.
func (r *receiver) wait(t testing.TB, n int) received {
	t.Helper()
	deadline := time.After(20 * time.Second) // a hang guard, not a speed check
	for {
		r.mu.Lock()
		if len(r.msgs) >= n {
			m := r.msgs[n-1]
			r.mu.Unlock()
			return m
		}
		r.mu.Unlock()
		select {
		case <-r.arrived:
		case <-deadline:
			t.Fatalf("receiver: message %d never arrived", n)
		}
	}
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

func (r *receiver) set(f func(r *receiver)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

// submit connects to the submission service with STARTTLS and AUTH PLAIN.
func (w *world) submitClient(s *sender.Server) *smtp.Client {
	w.t.Helper()
	c, err := smtp.DialStartTLS(s.Addr(), &tls.Config{RootCAs: w.ca.Pool(), ServerName: "smtp.office365.test"})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.example-bank.test"); err != nil {
		w.t.Fatalf("EHLO: %v", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", testUser, testPassword)); err != nil {
		w.t.Fatalf("AUTH: %v", err)
	}
	return c
}

// send runs one transaction and returns the final reply text.
func send(c *smtp.Client, from string, to []string, msg string) (string, error) {
	if err := c.Mail(from, nil); err != nil {
		return "", err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return "", err
		}
	}
	wc, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := io.WriteString(wc, msg); err != nil {
		return "", err
	}
	resp, err := wc.CloseWithResponse()
	if err != nil {
		return "", err
	}
	return resp.StatusText, nil
}

func canary(id, to string) string {
	return "From: OTP <" + lab.OTPFrom + ">\r\n" +
		"To: <" + to + ">\r\n" +
		"Subject: Your verification code [" + id + "]\r\n" +
		"Date: Mon, 23 Nov 2026 18:00:00 +0000\r\n" +
		"Message-ID: <" + id + "@example-bank.test>\r\n" +
		"X-Otpprobe-Id: " + id + "\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"\r\n" +
		"Your verification code is 483920.\r\n"
}

func smtpCode(err error) (int, smtp.EnhancedCode) {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code, se.EnhancedCode
	}
	return 0, smtp.EnhancedCode{}
}

// eventually polls cond; the timeout only guards against hangs.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
