package forwarder_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/verify"
)

// These tests run the whole lab: the M365-like sender DKIM-signs and relays
// to the list's MX, the forwarder seals and re-sends, and the Gmail-like
// receiver evaluates the forwarded copy.

func startWorld(t *testing.T) *lab.World {
	t.Helper()
	w, err := lab.Start(context.Background(), lab.Options{RetryInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func submit(t *testing.T, w *lab.World, to, id string) {
	t.Helper()
	var s lab.Endpoint
	for _, e := range w.Endpoints().Senders {
		if e.Name == lab.SenderM365 {
			s = e
		}
	}
	c, err := smtp.DialStartTLS(net.JoinHostPort(s.Host, fmt.Sprint(s.Port)), &tls.Config{RootCAs: w.CA().Pool(), ServerName: s.Host})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example-bank.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", s.Username, s.Password)); err != nil {
		t.Fatal(err)
	}
	msg := "From: <" + lab.OTPFrom + ">\r\nTo: <" + to + ">\r\nSubject: Your verification code [" + id + "]\r\n" +
		"Date: " + time.Now().Format(time.RFC1123Z) + "\r\nMessage-ID: <" + id + "@example-bank.test>\r\n" +
		"X-Otpprobe-Id: " + id + "\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYour verification code is 483920.\r\n"
	if err := c.SendMail(s.EnvelopeFrom, []string{to}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	c.Quit()
}

// fetch returns the whole message holding needle in the mailbox's folders,
// waiting up to 15 s; nil if it never comes.
func fetch(t *testing.T, w *lab.World, mailbox, needle string) (folder string, msg []byte) {
	t.Helper()
	ep := w.Endpoints()
	var m lab.Endpoint
	for _, e := range append(ep.Mailboxes, *ep.Bounces) {
		if e.Name == mailbox {
			m = e
		}
	}
	c, err := imapclient.DialStartTLS(net.JoinHostPort(m.Host, fmt.Sprint(m.Port)),
		&imapclient.Options{TLSConfig: &tls.Config{RootCAs: w.CA().Pool(), ServerName: m.Host}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(m.Username, m.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	whole := &imap.FetchItemBodySection{Peek: true}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		for _, f := range []string{"INBOX", m.Junk} {
			if _, err := c.Select(f, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
				t.Fatal(err)
			}
			data, err := c.UIDSearch(&imap.SearchCriteria{Text: []string{needle}}, nil).Wait()
			if err != nil {
				t.Fatal(err)
			}
			if uids := data.AllUIDs(); len(uids) > 0 {
				msgs, err := c.Fetch(imap.UIDSetNum(uids[0]), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{whole}}).Collect()
				if err != nil || len(msgs) == 0 {
					t.Fatalf("fetch: %v", err)
				}
				return f, msgs[0].FindBodySection(whole)
			}
		}
	}
	return "", nil
}

// The list breaks DKIM (Subject tag) and SPF is not aligned, so DMARC
// fails at Gmail; the forwarder's ARC set verifies against the lab DNS and
// Gmail, which trusts the sealer, delivers to the inbox with arc=pass.
func TestListForwardSealsARC(t *testing.T) {
	w := startWorld(t)
	id := "fwd1" + fmt.Sprint(time.Now().UnixNano()%1e6)
	submit(t, w, lab.ListAddress, id)
	folder, msg := fetch(t, w, lab.ProviderGmail, id)
	if msg == nil {
		t.Fatal("the forwarded canary never reached gmail")
	}
	if folder != "INBOX" {
		t.Errorf("delivered to %s, want INBOX (ARC honoured)", folder)
	}
	h, err := verify.ReadHeader(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if s := h.Get("Subject"); !strings.HasPrefix(s, "[list] ") {
		t.Errorf("Subject %q not tagged", s)
	}
	v := verify.Summarize(h, "mx.google.com")
	if !v.Trusted || v.DMARC != "fail" || v.ARC != "pass" || v.DKIM == "pass" {
		t.Errorf("gmail verdicts spf=%s dkim=%s dmarc=%s arc=%s, want dkim broken, dmarc fail, arc pass", v.SPF, v.DKIM, v.DMARC, v.ARC)
	}
	// Our own validator, through the lab DNS, agrees with Gmail.
	chain, err := verify.VerifyARCMessage(context.Background(), verify.ARCValidator{Lookup: w.Resolver().LookupTXT}, msg)
	if err != nil {
		t.Fatal(err)
	}
	if chain.CV != "pass" || !chain.Verified || chain.Instances != 1 || chain.Sets[0].AS["d"] != lab.ForwarderDomain {
		t.Fatalf("arc chain cv=%s verified=%v instances=%d error=%q", chain.CV, chain.Verified, chain.Instances, chain.Error)
	}
	aar := chain.Sets[0].AAR
	if aar.AuthservID != lab.ForwarderDomain || firstResult(aar, "dmarc") != "pass" || firstResult(aar, "dkim") != "pass" {
		t.Errorf("the forwarder recorded %+v, want the author's dkim and dmarc passing", aar)
	}
	// The re-check sees what Gmail saw: the author's signature no longer
	// verifies, with the selector that signed it.
	rc := verify.RecheckDKIM(context.Background(), w.Resolver().LookupTXT, msg)
	if len(rc) != 1 || rc[0].Result != "fail" || rc[0].Selector != lab.M365ActiveSelector {
		t.Errorf("dkim re-check %+v", rc)
	}
}

func firstResult(a verify.AuthResults, method string) string {
	if rs := a.Find(method); len(rs) > 0 {
		return rs[0].Result
	}
	return ""
}

// Without the sealer's key Gmail cannot verify the chain, applies the
// author's p=reject, and the sender bounces the canary to the bank.
func TestListForwardWithoutKeyIsRejected(t *testing.T) {
	w := startWorld(t)
	w.DNS().Remove(lab.DKIMName(lab.ForwarderSelector, lab.ForwarderDomain)+".", dns.TypeTXT)
	id := "fwd2" + fmt.Sprint(time.Now().UnixNano()%1e6)
	submit(t, w, lab.ListAddress, id)
	_, dsn := fetch(t, w, "bounces", id)
	if dsn == nil {
		t.Fatal("no bounce reached the bank")
	}
	d, err := verify.ParseDSN(bytes.NewReader(dsn))
	if err != nil {
		t.Fatal(err)
	}
	if !d.Failed() || d.OriginalProbeID != id || d.Recipients[0].Status != "5.7.26" {
		t.Errorf("DSN %+v, want a 5.7.26 failure for %s", d, id)
	}
}
