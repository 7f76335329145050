package mailstore_test

import (
	"crypto/tls"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/lab/mailstore"
)

const ip = "127.0.0.21"

func startStore(t *testing.T, junk, trash string) (*mailstore.Server, *tls.Config) {
	t.Helper()
	ca, err := lab.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	srvTLS, err := ca.ServerTLS(ip, "imap.gmail.test")
	if err != nil {
		t.Fatal(err)
	}
	s, err := mailstore.Start(mailstore.Config{Addr: ip + ":0", TLS: srvTLS, JunkFolder: junk, TrashFolder: trash})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.AddUser("seed", "seed-password"); err != nil {
		t.Fatal(err)
	}
	return s, &tls.Config{RootCAs: ca.Pool(), ServerName: ip}
}

func dial(t *testing.T, s *mailstore.Server, clientTLS *tls.Config, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	if opts == nil {
		opts = &imapclient.Options{}
	}
	opts.TLSConfig = clientTLS
	c, err := imapclient.DialStartTLS(s.Addr(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func msg(probeID string) []byte {
	return fmt.Appendf(nil, "From: otp@example-bank.test\r\nTo: seed@gmail.test\r\nMessage-ID: <%s@example-bank.test>\r\nX-Otpprobe-Id: %s\r\nSubject: Your code %s\r\n\r\nYour verification code is 483920\r\n", probeID, probeID, probeID)
}

func TestListSpecialUse(t *testing.T) {
	s, clientTLS := startStore(t, "[Gmail]/Spam", "[Gmail]/Trash")
	c := dial(t, s, clientTLS, nil)
	if err := c.Login("seed", "seed-password").Wait(); err != nil {
		t.Fatal(err)
	}
	if !c.Caps().Has(imap.CapSpecialUse) || !c.Caps().Has(imap.CapMove) || !c.Caps().Has(imap.CapUIDPlus) {
		t.Fatalf("caps %v lack SPECIAL-USE, MOVE or UIDPLUS", c.Caps())
	}
	for _, opts := range []*imap.ListOptions{nil, {ReturnSpecialUse: true}, {SelectSpecialUse: true}} {
		list, err := c.List("", "*", opts).Collect()
		if err != nil {
			t.Fatalf("LIST %+v: %v", opts, err)
		}
		got := map[string][]imap.MailboxAttr{}
		for _, l := range list {
			got[l.Mailbox] = l.Attrs
		}
		if !slices.Contains(got["[Gmail]/Spam"], imap.MailboxAttrJunk) {
			t.Errorf("LIST %+v: [Gmail]/Spam attrs %v, want \\Junk", opts, got["[Gmail]/Spam"])
		}
		if !slices.Contains(got["[Gmail]/Trash"], imap.MailboxAttrTrash) {
			t.Errorf("LIST %+v: [Gmail]/Trash attrs %v, want \\Trash", opts, got["[Gmail]/Trash"])
		}
		if opts != nil && opts.SelectSpecialUse {
			if _, ok := got["INBOX"]; ok {
				t.Errorf("LIST (SPECIAL-USE) listed INBOX")
			}
			continue
		}
		if !slices.Contains(got["[Gmail]"], imap.MailboxAttrNoSelect) {
			t.Errorf("LIST %+v: [Gmail] attrs %v, want \\Noselect parent", opts, got["[Gmail]"])
		}
		if _, ok := got["INBOX"]; !ok {
			t.Errorf("LIST %+v: no INBOX in %v", opts, got)
		}
	}
	// A created folder shows up; a deleted one goes away.
	if err := c.Create("Receipts", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	list, err := c.List("", "Rec*", nil).Collect()
	if err != nil || len(list) != 1 || list[0].Mailbox != "Receipts" {
		t.Fatalf("LIST Rec* = %v, %v", list, err)
	}
}

func TestAuthenticatePlainAndBadPassword(t *testing.T) {
	s, clientTLS := startStore(t, "Junk", "Trash")
	c := dial(t, s, clientTLS, nil)
	if err := c.Authenticate(sasl.NewPlainClient("", "seed", "wrong")); err == nil {
		t.Fatal("AUTHENTICATE PLAIN with a wrong password succeeded")
	}
	c2 := dial(t, s, clientTLS, nil)
	if err := c2.Authenticate(sasl.NewPlainClient("", "seed", "seed-password")); err != nil {
		t.Fatalf("AUTHENTICATE PLAIN: %v", err)
	}
	if _, err := c2.Select("Junk", nil).Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestIdleSeesDeliveryAndMoveToTrash(t *testing.T) {
	s, clientTLS := startStore(t, "Bulk", "Trash")
	exists := make(chan uint32, 8)
	c := dial(t, s, clientTLS, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
	}})
	if err := c.Login("seed", "seed-password").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("Bulk", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	at, err := s.Deliver("seed", "Bulk", msg("p-1"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-exists:
		if n != 1 {
			t.Errorf("EXISTS %d, want 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no EXISTS during IDLE after Deliver")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}

	d := s.Deliveries()
	if len(d) != 1 || d[0].ProbeID != "p-1" || d[0].MessageID != "p-1@example-bank.test" || d[0].Folder != "Bulk" || !d[0].At.Equal(at) {
		t.Fatalf("Deliveries() = %+v", d)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{InternalDate: true, UID: true}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetch: %v %v", msgs, err)
	}
	if !msgs[0].InternalDate.Equal(at.Truncate(time.Second)) && !msgs[0].InternalDate.Equal(at) {
		t.Errorf("INTERNALDATE %v, want %v", msgs[0].InternalDate, at)
	}
	move, err := c.Move(imap.UIDSetNum(msgs[0].UID), "Trash").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if move.DestUIDs == nil {
		t.Error("MOVE without COPYUID: UIDPLUS not in effect")
	}
	if s.Count("seed", "Bulk") != 0 || s.Count("seed", "Trash") != 1 {
		t.Errorf("after MOVE: Bulk=%d Trash=%d", s.Count("seed", "Bulk"), s.Count("seed", "Trash"))
	}
}

func TestBadInput(t *testing.T) {
	s, _ := startStore(t, "Junk", "Trash")
	if _, err := s.Deliver("nobody", "INBOX", msg("x")); err == nil {
		t.Error("Deliver to an unknown user succeeded")
	}
	if _, err := s.Deliver("seed", "Nope", msg("x")); err == nil {
		t.Error("Deliver to an unknown folder succeeded")
	}
	if err := s.AddUser("seed", "other"); err == nil {
		t.Error("AddUser twice succeeded")
	}
	if _, err := mailstore.Start(mailstore.Config{Addr: ip + ":0", JunkFolder: "Junk", TrashFolder: "Junk"}); err == nil {
		t.Error("Start with junk == trash succeeded")
	}
}

// Mail delivered after a client's last command but before it starts IDLE
// must be announced as soon as IDLE begins, as real servers do.
func TestIdleAnnouncesMailQueuedBeforeIdle(t *testing.T) {
	s, clientTLS := startStore(t, "Junk", "Trash")
	exists := make(chan uint32, 8)
	c := dial(t, s, clientTLS, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
	}})
	if err := c.Login("seed", "seed-password").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deliver("seed", "INBOX", msg("p-before-idle")); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { idle.Close(); idle.Wait() }()
	select {
	case n := <-exists:
		if n != 1 {
			t.Errorf("EXISTS %d, want 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("mail delivered before IDLE was never announced")
	}
}

// During an outage the server drops open connections and refuses new
// ones; afterwards it serves again.
func TestOutage(t *testing.T) {
	s, clientTLS := startStore(t, "Junk", "Trash")
	c := dial(t, s, clientTLS, nil)
	s.SetOutage(true)
	if err := c.Noop().Wait(); err == nil {
		t.Error("an open connection survived the outage")
	}
	if c, err := imapclient.DialStartTLS(s.Addr(), &imapclient.Options{TLSConfig: clientTLS}); err == nil {
		c.Close()
		t.Error("a new connection was served during the outage")
	}
	s.SetOutage(false)
	if err := dial(t, s, clientTLS, nil).Noop().Wait(); err != nil {
		t.Errorf("after the outage: %v", err)
	}
}

// TestEmptyTrash: a message goes at the second EmptyTrash after it
// arrived in Trash, as a provider empties Trash after a while; the inbox
// is never touched.
func TestEmptyTrash(t *testing.T) {
	s, _ := startStore(t, "Junk", "Trash")
	for _, f := range []string{"Trash", "INBOX"} {
		if _, err := s.Deliver("seed", f, msg("old-"+f)); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.EmptyTrash(); n != 0 {
		t.Errorf("first EmptyTrash removed %d, want 0 (nothing had been there a period yet)", n)
	}
	if _, err := s.Deliver("seed", "Trash", msg("new")); err != nil {
		t.Fatal(err)
	}
	if n := s.EmptyTrash(); n != 1 {
		t.Errorf("second EmptyTrash removed %d, want 1", n)
	}
	if got := s.Count("seed", "Trash"); got != 1 {
		t.Errorf("Trash holds %d, want the newer 1", got)
	}
	if got := s.Count("seed", "INBOX"); got != 1 {
		t.Errorf("INBOX holds %d, want 1", got)
	}
	if n := s.EmptyTrash(); n != 1 || s.Count("seed", "Trash") != 0 {
		t.Errorf("third EmptyTrash removed %d, Trash holds %d", n, s.Count("seed", "Trash"))
	}
	if s.DeliveryCount() != 3 {
		t.Errorf("DeliveryCount %d, want 3", s.DeliveryCount())
	}
}
