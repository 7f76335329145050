package receiver_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"

	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/lab/dnsserver"
	"github.com/otpprobe/otpprobe/lab/mailstore"
	"github.com/otpprobe/otpprobe/lab/receiver"
	"github.com/otpprobe/otpprobe/verify/resolver"
)

// The test world's names. Source addresses are bound for real so SPF sees
// different senders on one machine.
const (
	bankDomain       = "example-bank.test"
	quarantineDomain = "quarantine-bank.test"
	m365Include      = "spf.m365.test"
	m365IP           = "127.0.0.11" // authorised through the include
	strangerIP       = "127.0.0.13" // authorised nowhere
	activeSelector   = "selector1"
	missingSelector  = "selector2" // signs, but no key is published
	seedPassword     = "seed-password"
)

var hostIPs = map[string]string{
	"gmail": "127.0.0.21", "yahoo": "127.0.0.22", "outlook": "127.0.0.23", "bank": "127.0.0.30", "deferring": "127.0.0.24",
}

// deferringProfile is Gmail with DMARC temperror answered by 451.
func deferringProfile() receiver.Profile {
	p := receiver.Gmail()
	p.Name, p.Domain, p.Hostname = "deferring", "defer.test", "mx.defer.test"
	p.OnTempError = receiver.Defer
	return p
}

// dialedConns maps clients to their connections, for deadlines.
var dialedConns sync.Map

var (
	keyOnce sync.Once
	dkimKey *rsa.PrivateKey
)

func signingKey(t testing.TB) *rsa.PrivateKey {
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		dkimKey = k
	})
	return dkimKey
}

type world struct {
	dns      *dnsserver.Server
	recv     *receiver.Server
	stores   map[string]*mailstore.Server
	caPool   *x509.CertPool
	clientIP map[string]*tls.Config
}

func newWorld(t testing.TB) *world {
	t.Helper()
	key := signingKey(t)
	ca, err := lab.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	d, err := dnsserver.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	zone := []string{
		fmt.Sprintf(`%s. 300 IN TXT "v=spf1 include:%s -all"`, bankDomain, m365Include),
		fmt.Sprintf(`%s. 300 IN TXT "v=spf1 ip4:%s -all"`, m365Include, m365IP),
		fmt.Sprintf(`_dmarc.%s. 300 IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@%s"`, bankDomain, bankDomain),
		fmt.Sprintf(`%s._domainkey.%s. 300 IN TXT "v=DKIM1; k=rsa; p=%s"`, activeSelector, bankDomain, base64.StdEncoding.EncodeToString(pub)),
		fmt.Sprintf(`%s. 300 IN TXT "v=spf1 -all"`, quarantineDomain),
		fmt.Sprintf(`_dmarc.%s. 300 IN TXT "v=DMARC1; p=quarantine"`, quarantineDomain),
	}
	if err := d.Load(zone); err != nil {
		t.Fatal(err)
	}
	res, err := resolver.New(resolver.Config{Servers: []string{d.Addr()}, Timeout: time.Second, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}

	w := &world{dns: d, stores: map[string]*mailstore.Server{}, caPool: ca.Pool()}
	profiles := []receiver.Profile{receiver.Gmail(), receiver.Yahoo(), receiver.Outlook(), receiver.Bank(), deferringProfile()}
	var hosts []receiver.Host
	var names []string
	for _, p := range profiles {
		ip := hostIPs[p.Name]
		names = append(names, ip, p.Hostname)
		imapTLS, err := ca.ServerTLS(ip)
		if err != nil {
			t.Fatal(err)
		}
		st, err := mailstore.Start(mailstore.Config{Addr: ip + ":0", TLS: imapTLS, JunkFolder: p.JunkFolder, TrashFolder: p.TrashFolder})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if err := st.AddUser("seed", seedPassword); err != nil {
			t.Fatal(err)
		}
		w.stores[p.Name] = st
		hosts = append(hosts, receiver.Host{IP: ip, Profile: p, Store: st})
	}
	smtpTLS, err := ca.ServerTLS(names...)
	if err != nil {
		t.Fatal(err)
	}
	r, err := receiver.Start(receiver.Config{Resolver: res, TLS: smtpTLS, Hosts: hosts, MaxMessageBytes: 64 << 10, ReadTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	w.recv = r
	return w
}

// message builds an OTP-like message From domain, signed with selector
// (none when selector is "").
func message(t testing.TB, fromDomain, to, selector, probeID string) []byte {
	t.Helper()
	raw := fmt.Sprintf("From: Example Bank <otp@%s>\r\nTo: %s\r\nSubject: Your verification code [%s]\r\n"+
		"Date: %s\r\nMessage-ID: <%s@%s>\r\nX-Otpprobe-Id: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+
		"Your verification code is 483920.\r\n", fromDomain, to, probeID, time.Now().Format(time.RFC1123Z), probeID, fromDomain, probeID)
	if selector == "" {
		return []byte(raw)
	}
	var signed bytes.Buffer
	err := dkim.Sign(&signed, strings.NewReader(raw), &dkim.SignOptions{
		Domain: fromDomain, Selector: selector, Signer: signingKey(t),
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID", "X-Otpprobe-Id"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return signed.Bytes()
}

// send submits msg to provider's MX from srcIP, like a relay would.
func (w *world) send(t testing.TB, provider, srcIP, mailFrom, rcpt string, msg []byte) error {
	t.Helper()
	c, err := w.dialSMTP(provider, srcIP)
	if err != nil {
		return err
	}
	defer c.Close()
	return transact(c, mailFrom, rcpt, msg)
}

func (w *world) dialSMTP(provider, srcIP string) (*smtp.Client, error) {
	addr, ok := w.recv.Addr(provider)
	if !ok {
		return nil, fmt.Errorf("no provider %q", provider)
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(srcIP)}, Timeout: 5 * time.Second}
	conn, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		return nil, err
	}
	c, err := smtp.NewClientStartTLS(conn, &tls.Config{RootCAs: w.caPool, ServerName: hostIPs[provider]})
	if err != nil {
		conn.Close()
		return nil, err
	}
	// The TLS handshake is lazy: the next command surfaces its errors.
	if err := c.Hello("mail.example-bank.test"); err != nil {
		c.Close()
		return nil, err
	}
	dialedConns.Store(c, conn)
	return c, nil
}

func transact(c *smtp.Client, mailFrom, rcpt string, msg []byte) error {
	if err := c.Mail(mailFrom, nil); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return err
	}
	wc, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := wc.Write(msg); err != nil {
		return err
	}
	return wc.Close()
}

// smtpCode returns the code and enhanced code of an SMTP error reply.
func smtpCode(err error) (int, smtp.EnhancedCode) {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code, se.EnhancedCode
	}
	return 0, smtp.EnhancedCode{}
}

// imapDial logs into provider's store as the seed user.
func (w *world) imapDial(t testing.TB, provider string, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	if opts == nil {
		opts = &imapclient.Options{}
	}
	opts.TLSConfig = &tls.Config{RootCAs: w.caPool, ServerName: hostIPs[provider]}
	c, err := imapclient.DialStartTLS(w.stores[provider].Addr(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login("seed", seedPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

// folderOf finds the folder with a special-use attribute over IMAP LIST;
// "INBOX" for attr "".
func folderOf(t testing.TB, c *imapclient.Client, attr imap.MailboxAttr) string {
	t.Helper()
	if attr == "" {
		return "INBOX"
	}
	list, err := c.List("", "*", &imap.ListOptions{ReturnSpecialUse: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range list {
		for _, a := range l.Attrs {
			if a == attr {
				return l.Mailbox
			}
		}
	}
	t.Fatalf("no mailbox with %s in %v", attr, list)
	return ""
}

// lastHeader fetches the header of the newest message in folder over IMAP;
// "" when the folder is empty.
func lastHeader(t testing.TB, c *imapclient.Client, folder string) string {
	t.Helper()
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages == 0 {
		return ""
	}
	sec := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}
	msgs, err := c.Fetch(imap.SeqSetNum(sel.NumMessages), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetch %s: %v (%d messages)", folder, err, len(msgs))
	}
	return string(msgs[0].FindBodySection(sec))
}

// unfold joins folded header lines so tests can match whole values.
func unfold(h string) string { return folding.ReplaceAllString(h, " ") }

var folding = regexp.MustCompile(`\r\n[ \t]+`)
