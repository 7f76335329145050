package lab_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/mail"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/otpprobe/otpprobe/lab"
)

// The tests here use the world only as a client would: a plain SMTP client
// submits, a plain IMAP client reads back.

func startWorld(t testing.TB, o lab.Options) *lab.World {
	t.Helper()
	if o.RetryInterval == 0 {
		o.RetryInterval = 200 * time.Millisecond
	}
	if o.ProviderDelay == 0 {
		o.ProviderDelay = 2 * time.Second
	}
	w, err := lab.Start(context.Background(), o)
	if err != nil {
		t.Fatalf("start world: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func senderEndpoint(t testing.TB, w *lab.World, name string) lab.Endpoint {
	for _, s := range w.Endpoints().Senders {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no sender %s", name)
	return lab.Endpoint{}
}

func mailboxEndpoint(t testing.TB, w *lab.World, name string) lab.Endpoint {
	ep := w.Endpoints()
	switch name {
	case "bounces":
		return *ep.Bounces
	case "relay-bounces":
		return *ep.RelayBounces
	}
	for _, m := range ep.Mailboxes {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("no mailbox %s", name)
	return lab.Endpoint{}
}

// submit sends one test message through a sender with STARTTLS and AUTH
// PLAIN, verifying the lab CA. id goes into the Message-ID.
func submit(w *lab.World, s lab.Endpoint, to, id string) error {
	addr := net.JoinHostPort(s.Host, fmt.Sprint(s.Port))
	c, err := smtp.DialStartTLS(addr, &tls.Config{RootCAs: w.CA().Pool(), ServerName: s.Host})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.example-bank.test"); err != nil {
		return err
	}
	if err := c.Auth(sasl.NewPlainClient("", s.Username, s.Password)); err != nil {
		return err
	}
	from, err := mail.ParseAddress(s.From)
	if err != nil {
		return err
	}
	msg := "From: " + from.String() + "\r\nTo: <" + to + ">\r\nSubject: Your verification code is 123456\r\n" +
		"Date: " + time.Now().Format(time.RFC1123Z) + "\r\nMessage-ID: <" + id + "@example-bank.test>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYour verification code is 123456.\r\n"
	if err := c.SendMail(s.EnvelopeFrom, []string{to}, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

// imapClient logs in to a mailbox with STARTTLS, verifying the lab CA.
func imapClient(t testing.TB, w *lab.World, m lab.Endpoint) *imapclient.Client {
	t.Helper()
	addr := net.JoinHostPort(m.Host, fmt.Sprint(m.Port))
	c, err := imapclient.DialStartTLS(addr, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: w.CA().Pool(), ServerName: m.Host}})
	if err != nil {
		t.Fatalf("imap dial %s: %v", m.Name, err)
	}
	if err := c.Login(m.Username, m.Password).Wait(); err != nil {
		t.Fatalf("imap login %s: %v", m.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// found is a message located over IMAP.
type found struct {
	folder string
	header string
	body   string
}

// lookFor searches the folders for a message whose header or body holds
// needle; it returns nil when none does (yet).
func lookFor(t testing.TB, c *imapclient.Client, folders []string, needle string, withBody bool) *found {
	t.Helper()
	for _, f := range folders {
		if _, err := c.Select(f, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatalf("select %s: %v", f, err)
		}
		data, err := c.UIDSearch(&imap.SearchCriteria{Text: []string{needle}}, nil).Wait()
		if err != nil {
			t.Fatalf("search %s: %v", f, err)
		}
		uids := data.AllUIDs()
		if len(uids) == 0 {
			continue
		}
		hdr := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}
		body := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Peek: true}
		opts := &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{hdr}}
		if withBody {
			opts.BodySection = append(opts.BodySection, body)
		}
		msgs, err := c.Fetch(imap.UIDSetNum(uids[0]), opts).Collect()
		if err != nil || len(msgs) == 0 {
			t.Fatalf("fetch %s: %v", f, err)
		}
		return &found{folder: f, header: string(msgs[0].FindBodySection(hdr)), body: string(msgs[0].FindBodySection(body))}
	}
	return nil
}

var resultRE = regexp.MustCompile(`(?i)\b(spf|dkim|dmarc)\s*=\s*([a-z_]+)`)

// topAuthResults returns the method results of the topmost
// Authentication-Results field of a header block.
func topAuthResults(header string) map[string]string {
	unfolded := strings.NewReplacer("\r\n ", " ", "\r\n\t", " ").Replace(header)
	out := map[string]string{}
	for _, line := range strings.Split(unfolded, "\r\n") {
		if !strings.HasPrefix(strings.ToLower(line), "authentication-results:") {
			continue
		}
		for _, m := range resultRE.FindAllStringSubmatch(line, -1) {
			k := strings.ToLower(m[1])
			if _, seen := out[k]; !seen {
				out[k] = strings.ToLower(m[2])
			}
		}
		return out
	}
	return out
}

func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cond()
}

// A world that cannot start returns an error (and stops what it started)
// instead of panicking in its own cleanup.
func TestStartErrorIsReturned(t *testing.T) {
	dir := t.TempDir() + "/file"
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := lab.Start(context.Background(), lab.Options{Dir: dir + "/sub"})
	if err == nil || w != nil {
		t.Fatalf("Start with an unusable Dir = %v, %v; want nil and an error", w, err)
	}
}
