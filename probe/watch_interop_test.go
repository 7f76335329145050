package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"strconv"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/targets"
)

// The watcher against Dovecot (scripts/testservers.sh; see interop_test.go):
// special-use discovery, IDLE, Sieve-filed spam through Postfix, cleanup to
// Trash, and a connection cut mid-IDLE through a proxy.
func TestWatcherInterop(t *testing.T) {
	ep := loadInteropEndpoints(t)
	mbEP := ep.Mailboxes[0]
	mb := targets.Mailbox{
		Name:     mbEP.Name,
		Endpoint: targets.Endpoint{Host: mbEP.Host, Port: mbEP.Port, TLS: mbEP.TLS, CAFile: ep.CAFile},
		Auth:     targets.Auth{Mechanism: targets.AuthPlain, Username: mbEP.Username},
	}
	creds := staticCreds(mbEP.Username, mbEP.Password)

	inboxTok, spamTok, dropTok, otherTok := interopToken(t), interopToken(t), interopToken(t), interopToken(t)
	col := newCollector(inboxTok, spamTok, dropTok)

	// The INBOX watcher goes through a proxy on the server's own address,
	// so the certificate still matches and the test can cut the line.
	proxy := newDropProxyOn(t, mbEP.Host, net.JoinHostPort(mbEP.Host, strconv.Itoa(mbEP.Port)))
	viaProxy := mb
	_, port, _ := net.SplitHostPort(proxy.addr())
	viaProxy.Port, _ = strconv.Atoi(port)
	inbox := NewWatcher(WatchConfig{Mailbox: viaProxy, Folder: "INBOX", Creds: creds, PollEvery: safetyNet}, Canaries(col.match, col.deliver))
	junk := NewWatcher(WatchConfig{Mailbox: mb, Folder: FolderJunk, Creds: creds, PollEvery: safetyNet}, Canaries(col.match, col.deliver))
	runWatcher(t, inbox)
	runWatcher(t, junk)
	eventually(t, "both watchers in IDLE", func() bool {
		return inbox.State().Status == WatchIdle && junk.State().Status == WatchIdle
	})
	if got := junk.State().Folder; got != mbEP.Junk {
		t.Fatalf("junk folder = %q, want %q (special-use)", got, mbEP.Junk)
	}

	c := interopIMAP(t, ep, mbEP)
	appendRaw(t, c, "INBOX", interopMessage("friend@example.org", mbEP.Address, otherTok), nil)
	appendRaw(t, c, "INBOX", canaryMsg(inboxTok), nil)
	a := col.next(t)
	if a.Token != inboxTok || a.Folder != "INBOX" {
		t.Fatalf("arrival = %s in %s", a.Token, a.Folder)
	}

	// Through Postfix and LMTP; Sieve files X-Spam-Flag: YES into Junk.
	s := ep.Senders[0]
	ctx, cancel := context.WithTimeout(context.Background(), interopWait)
	defer cancel()
	if _, err := interopSender(t, ep, targets.AuthPlain, s.Password).Send(ctx, s.From, []string{mbEP.Address},
		interopMessage(s.From, mbEP.Address, spamTok, "X-Spam-Flag: YES")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if a := col.next(t); a.Token != spamTok || a.Folder != mbEP.Junk || a.InternalDate.IsZero() {
		t.Fatalf("arrival = %s in %s at %v", a.Token, a.Folder, a.InternalDate)
	}

	proxy.cut(true)
	eventually(t, "backoff", func() bool { return inbox.State().Status == WatchBackoff })
	appendRaw(t, c, "INBOX", canaryMsg(dropTok), nil)
	proxy.up()
	if a := col.next(t); a.Token != dropTok {
		t.Fatalf("after reconnect: %s", a.Token)
	}

	// Canaries went to Trash; the other message stayed, unseen.
	eventually(t, "canaries cleaned up", func() bool {
		return len(interopSearch(t, c, "INBOX", inboxTok))+len(interopSearch(t, c, "INBOX", dropTok))+len(interopSearch(t, c, mbEP.Junk, spamTok)) == 0
	})
	if n := len(interopSearch(t, c, mbEP.Trash, inboxTok)); n != 1 {
		t.Errorf("%d copies of the inbox canary in %s, want 1", n, mbEP.Trash)
	}
	uids := interopSearch(t, c, "INBOX", otherTok)
	if len(uids) != 1 {
		t.Fatalf("other mail: %d copies in INBOX", len(uids))
	}
	bufs, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{Flags: true}).Collect()
	if err != nil || len(bufs) != 1 || len(bufs[0].Flags) != 0 {
		t.Errorf("other mail flags = %v, %v; want untouched", bufs, err)
	}
	for _, tok := range []string{inboxTok, spamTok, dropTok} {
		if n := col.count(tok); n != 1 {
			t.Errorf("%s delivered %d times", tok, n)
		}
	}
}

func interopIMAP(t *testing.T, ep *lab.Endpoints, mb lab.Endpoint) *imapclient.Client {
	t.Helper()
	pem, err := os.ReadFile(ep.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c, err := imapclient.DialStartTLS(net.JoinHostPort(mb.Host, strconv.Itoa(mb.Port)),
		&imapclient.Options{TLSConfig: &tls.Config{RootCAs: pool, ServerName: mb.Host}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(mb.Username, mb.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

// interopSearch returns the UIDs in folder whose Subject holds token.
func interopSearch(t *testing.T, c *imapclient.Client, folder, token string) []imap.UID {
	t.Helper()
	if _, err := c.Select(folder, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	data, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: token}}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	return data.AllUIDs()
}
