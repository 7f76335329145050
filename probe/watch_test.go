package probe

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/targets"
)

// safetyNet is the polling interval of tests that rely on IDLE. go-imap's
// imapserver (the lab's server) does not report mail appended in the
// instant between its IDLE continuation and its tracker registration
// until the next update; real servers do. The safety net bounds that.
const safetyNet = 3 * time.Second

// IDLE delivers a canary appended by another client; other mail is read
// with PEEK only and stays where it is; the canary is moved to \Trash.
func TestWatcherIdleDeliversAndCleansUp(t *testing.T) {
	w := newWorld(t)
	col := newCollector("otp-idle1")
	wt := NewWatcher(WatchConfig{Mailbox: w.mailbox(), Folder: "INBOX", Creds: staticCreds(testUser, testPassword), PollEvery: safetyNet}, Canaries(
		col.match, col.deliver))

	runWatcher(t, wt)
	eventually(t, "IDLE", func() bool { return wt.State().Status == WatchIdle })

	c := w.client()
	other := otherMsg("lunch tomorrow")
	appendRaw(t, c, "INBOX", other, nil)
	appendRaw(t, c, "INBOX", canaryMsg("otp-idle1"), nil)

	a := col.next(t)
	if a.Token != "otp-idle1" || a.Folder != "INBOX" || a.Mailbox != "gmail-seed" {
		t.Fatalf("arrival = %+v", a)
	}
	if a.UID == 0 || a.SeenAt.IsZero() || a.InternalDate.IsZero() || a.SeenAt.Before(a.InternalDate.Add(-time.Second)) {
		t.Errorf("arrival times/uid = uid %d seen %v internal %v", a.UID, a.SeenAt, a.InternalDate)
	}
	if a.SeenAt.Location() != time.UTC || a.SeenAt.Nanosecond()%int(time.Millisecond) != 0 {
		t.Errorf("SeenAt %v is not UTC at ms resolution", a.SeenAt)
	}
	if !bytes.Contains(a.Header, []byte("X-Otpprobe-Id: otp-idle1")) || !bytes.HasSuffix(a.Header, []byte("\r\n\r\n")) {
		t.Errorf("header block not kept whole: %q", a.Header)
	}

	eventually(t, "canary moved to trash", func() bool { return w.store.Count(testUser, testTrash) == 1 })
	inbox := w.messages(c, "INBOX")
	if len(inbox) != 1 {
		t.Fatalf("INBOX has %d messages, want only the other mail", len(inbox))
	}
	for _, m := range inbox {
		if !strings.Contains(m.header, "lunch tomorrow") {
			t.Errorf("wrong message left in INBOX: %q", m.header)
		}
		if slices.Contains(m.flags, imap.FlagSeen) || slices.Contains(m.flags, imap.FlagDeleted) {
			t.Errorf("other mail was touched: flags %v", m.flags)
		}
	}
	if st := wt.State(); !st.Connected || !st.Idle || st.Delivered != 1 || st.Folder != "INBOX" {
		t.Errorf("state = %+v", st)
	}
}

// Without IDLE the watcher polls; a Subject-only canary (custom header
// dropped, encoded Subject) still matches.
func TestWatcherPollingWithoutIdle(t *testing.T) {
	w := newWorld(t)
	col := newCollector("otp-poll1")
	wt := NewWatcher(WatchConfig{Mailbox: w.mailbox(), Creds: staticCreds(testUser, testPassword), PollEvery: 100 * time.Millisecond, NoIdle: true}, Canaries(
		col.match, col.deliver))

	runWatcher(t, wt)
	eventually(t, "connected", func() bool { return wt.State().Connected })
	if wt.State().Idle {
		t.Fatal("IDLE in use despite NoIdle")
	}
	w.deliver("INBOX", subjectOnlyMsg("otp-poll1"))
	a := col.next(t)
	if a.Token != "otp-poll1" {
		t.Fatalf("token = %q", a.Token)
	}
	eventually(t, "canary moved to trash", func() bool { return w.store.Count(testUser, "INBOX") == 0 })
}

// The junk folder is found by its \Junk attribute and canaries there are
// reported with the folder's actual name.
func TestWatcherJunkFolder(t *testing.T) {
	w := newWorld(t)
	col := newCollector("otp-junk1")
	wt := NewWatcher(WatchConfig{Mailbox: w.mailbox(), Folder: FolderJunk, Creds: staticCreds(testUser, testPassword), PollEvery: safetyNet}, Canaries(
		col.match, col.deliver))

	runWatcher(t, wt)
	eventually(t, "IDLE", func() bool { return wt.State().Status == WatchIdle })
	w.deliver("INBOX", canaryMsg("otp-junk1")) // not this watcher's folder
	w.deliver(testJunk, canaryMsg("otp-junk1"))
	a := col.next(t)
	if a.Folder != testJunk || wt.State().Folder != testJunk {
		t.Fatalf("folder = %q, state %q; want %q", a.Folder, wt.State().Folder, testJunk)
	}
	if n := w.store.Count(testUser, "INBOX"); n != 1 {
		t.Errorf("INBOX count = %d; the junk watcher must not touch it", n)
	}
}

// A canary that arrived before the watcher started (engine restart) is
// found by the first connection's rescan.
func TestWatcherFindsMailFromBeforeStart(t *testing.T) {
	w := newWorld(t)
	w.deliver("INBOX", canaryMsg("otp-early"))
	w.deliver("INBOX", otherMsg("old"))
	col := newCollector("otp-early")
	runWatcher(t, NewWatcher(WatchConfig{Mailbox: w.mailbox(), Creds: staticCreds(testUser, testPassword)}, Canaries(col.match, col.deliver)))
	if a := col.next(t); a.Token != "otp-early" {
		t.Fatalf("token = %q", a.Token)
	}
}

// Cleanup off leaves canaries in place; Poke makes an immediate poll.
func TestWatcherCleanupOff(t *testing.T) {
	w := newWorld(t)
	mb := w.mailbox()
	off := false
	mb.Cleanup = &off
	col := newCollector()
	wt := NewWatcher(WatchConfig{Mailbox: mb, Creds: staticCreds(testUser, testPassword), PollEvery: time.Hour, NoIdle: true}, Canaries(
		col.match, col.deliver))

	runWatcher(t, wt)
	eventually(t, "connected", func() bool { return wt.State().Connected })
	w.deliver("INBOX", canaryMsg("otp-keep"))
	// Not yet pending: the watcher sees it but ignores it, like other mail.
	wt.Poke()
	eventually(t, "poll past the canary", func() bool { return wt.State().LastUID >= 1 })
	col.add("otp-keep")
	wt.Rescan() // the attempt was registered late: look again
	if a := col.next(t); a.Token != "otp-keep" {
		t.Fatalf("token = %q", a.Token)
	}
	wt.Poke()
	eventually(t, "another poll", func() bool { return time.Since(wt.State().LastPoll) < time.Second })
	if n := w.store.Count(testUser, "INBOX"); n != 1 {
		t.Errorf("INBOX count = %d, want the canary kept", n)
	}
	if n := col.count("otp-keep"); n != 1 {
		t.Errorf("delivered %d times", n)
	}
}

// Without a trash folder canaries are flagged and expunged by UID; other
// mail, even already flagged \Deleted by someone else, is untouched.
func TestWatcherExpungesOnlyCanaries(t *testing.T) {
	ps := startPlain(t, &plainServer{folders: []string{"INBOX"}})
	c := dialPlain(t, ps)
	appendRaw(t, c, "INBOX", otherMsg("keep me"), nil)
	appendRaw(t, c, "INBOX", otherMsg("deleted by the user"), []imap.Flag{imap.FlagDeleted})
	col := newCollector("otp-exp1")
	wt := NewWatcher(WatchConfig{Mailbox: ps.mailbox(), Creds: staticCreds(testUser, testPassword), PollEvery: safetyNet}, Canaries(col.match, col.deliver))
	runWatcher(t, wt)
	eventually(t, "IDLE", func() bool { return wt.State().Status == WatchIdle })
	appendRaw(t, c, "INBOX", canaryMsg("otp-exp1"), nil)
	col.next(t)
	eventually(t, "canary expunged", func() bool { return countMessages(t, ps, "INBOX") == 2 })
}

// A connection dropped mid-IDLE is re-established with backoff, and a
// canary delivered while the watcher was cut off is found exactly once.
func TestWatcherReconnectsAfterDrop(t *testing.T) {
	w := newWorld(t).withProxy()
	col := newCollector("otp-before", "otp-during")
	wt := NewWatcher(WatchConfig{Mailbox: w.mailbox(), Creds: staticCreds(testUser, testPassword), PollEvery: safetyNet}, Canaries(
		col.match, col.deliver))

	runWatcher(t, wt)
	eventually(t, "IDLE", func() bool { return wt.State().Status == WatchIdle })
	w.deliver("INBOX", canaryMsg("otp-before"))
	col.next(t)

	w.proxy.cut(true)
	eventually(t, "backoff", func() bool { return wt.State().Status == WatchBackoff })
	w.deliver("INBOX", canaryMsg("otp-during"))
	w.proxy.up()

	if a := col.next(t); a.Token != "otp-during" {
		t.Fatalf("token = %q", a.Token)
	}
	st := wt.State()
	if st.Reconnects < 1 || st.LastError == "" {
		t.Errorf("state after reconnect = %+v", st)
	}
	wt.Poke()
	eventually(t, "a later poll", func() bool { return time.Since(wt.State().LastPoll) < time.Second })
	if n := col.count("otp-during") + col.count("otp-before"); n != 2 {
		t.Errorf("%d deliveries, want each canary once", n)
	}
}

// When the folder is recreated (UIDVALIDITY changes) while the watcher is
// away, old UIDs mean nothing: a rescan finds the canary even though its
// new UID is below the last UID seen.
func TestWatcherUIDValidityChange(t *testing.T) {
	w := newWorld(t).withProxy()
	c := w.client()
	if err := c.Create("Alerts", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		w.deliver("Alerts", otherMsg("filler "+string(rune('a'+i))))
	}
	col := newCollector("otp-uidv")
	wt := NewWatcher(WatchConfig{Mailbox: w.mailbox(), Folder: "Alerts", Creds: staticCreds(testUser, testPassword), PollEvery: safetyNet}, Canaries(
		col.match, col.deliver))

	runWatcher(t, wt)
	eventually(t, "IDLE", func() bool { return wt.State().Status == WatchIdle })
	before := wt.State()
	if before.LastUID != 3 {
		t.Fatalf("LastUID = %d, want 3", before.LastUID)
	}

	w.proxy.cut(true)
	if err := c.Delete("Alerts").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("Alerts", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	w.deliver("Alerts", canaryMsg("otp-uidv")) // UID 1 in the new folder
	w.proxy.up()

	a := col.next(t)
	if a.Token != "otp-uidv" || a.UID != 1 {
		t.Fatalf("arrival = %s uid %d", a.Token, a.UID)
	}
	if after := wt.State(); after.UIDValidity == before.UIDValidity {
		t.Errorf("UIDVALIDITY still %d", after.UIDValidity)
	}
}

func TestWatcherBadCredentials(t *testing.T) {
	w := newWorld(t)
	const wrong = "Wr0ng-Secret-Value"
	var logs logBuffer
	wt := NewWatcher(WatchConfig{Mailbox: w.mailbox(), Creds: staticCreds(testUser, wrong), Logger: logs.logger()}, Canaries(
		func(string) bool { return true }, func(Arrival) {}))

	runWatcher(t, wt)
	eventually(t, "a login failure", func() bool { return wt.State().LastError != "" })
	st := wt.State()
	if !strings.Contains(st.LastError, "login") || strings.Contains(st.LastError, wrong) {
		t.Errorf("LastError = %q", st.LastError)
	}
	if st.Connected {
		t.Error("connected with a wrong password")
	}
	if out := logs.String(); strings.Contains(out, wrong) || !strings.Contains(out, "login") {
		t.Errorf("log = %q", out)
	}

	_, err := dialIMAP(context.Background(), w.mailbox(), staticCreds(testUser, wrong), nil)
	var ie *IMAPError
	if !errors.As(err, &ie) || ie.Stage != StageLogin || ie.Temporary() || strings.Contains(err.Error(), wrong) {
		t.Fatalf("err = %v", err)
	}
}

func TestWatcherTLSVerification(t *testing.T) {
	w := newWorld(t)
	other, err := lab.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		edit      func(*targets.Mailbox)
		stage     string
		permanent bool
	}{
		"unknown CA":        {func(mb *targets.Mailbox) { mb.CAFile = writeCA(t, other) }, StageTLS, true},
		"system roots":      {func(mb *targets.Mailbox) { mb.CAFile = "" }, StageTLS, true},
		"wrong host name":   {func(mb *targets.Mailbox) { mb.Host = "localhost" }, StageTLS, true},
		"implicit on 143":   {func(mb *targets.Mailbox) { mb.TLS = targets.TLSImplicit }, StageTLS, false},
		"none, not secure":  {func(mb *targets.Mailbox) { mb.TLS = targets.TLSNone }, StageConfig, true},
		"missing ca_file":   {func(mb *targets.Mailbox) { mb.CAFile = "/nonexistent/ca.pem" }, StageConfig, true},
		"unknown mechanism": {func(mb *targets.Mailbox) { mb.Auth.Mechanism = "cram-md5" }, StageConfig, true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			mb := w.mailbox()
			tc.edit(&mb)
			ctx, cancel := context.WithTimeout(context.Background(), waitLong)
			defer cancel()
			c, err := dialIMAP(ctx, mb, staticCreds(testUser, testPassword), nil)
			if err == nil {
				c.Close()
				t.Fatal("connected")
			}
			var ie *IMAPError
			if !errors.As(err, &ie) || ie.Stage != tc.stage || (tc.permanent && ie.Temporary()) {
				t.Fatalf("err = %v (want stage %s, permanent %v)", err, tc.stage, tc.permanent)
			}
			if strings.Contains(err.Error(), testPassword) {
				t.Fatalf("secret in error: %v", err)
			}
		})
	}
	// Insecure skips verification, but only when asked.
	mb := w.mailbox()
	mb.CAFile, mb.Insecure = "", true
	c, err := dialIMAP(context.Background(), mb, staticCreds(testUser, testPassword), nil)
	if err != nil {
		t.Fatalf("insecure: %v", err)
	}
	c.Close()
}

func TestWatcherXOAUTH2(t *testing.T) {
	const token = "ya29.good-access-token"
	ps := startPlain(t, &plainServer{folders: []string{"INBOX"}, token: token})
	mb := ps.mailbox()
	mb.Auth.Mechanism = targets.AuthXOAUTH2
	c, err := dialIMAP(context.Background(), mb, staticCreds(testUser, token), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	const bad = "ya29.expired-token-value"
	_, err = dialIMAP(context.Background(), mb, staticCreds(testUser, bad), nil)
	var ie *IMAPError
	if !errors.As(err, &ie) || ie.Stage != StageLogin || strings.Contains(err.Error(), bad) {
		t.Fatalf("err = %v", err)
	}
}

func TestWatcherStopsOnCancel(t *testing.T) {
	w := newWorld(t)
	wt := NewWatcher(WatchConfig{Mailbox: w.mailbox(), Creds: staticCreds(testUser, testPassword)}, Canaries(func(string) bool { return false }, func(Arrival) {}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- wt.Run(ctx) }()
	eventually(t, "IDLE", func() bool { return wt.State().Status == WatchIdle })
	if err := wt.Run(ctx); err == nil {
		t.Error("second Run accepted")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitLong):
		t.Fatal("Run did not return")
	}
	if st := wt.State(); st.Status != WatchStopped {
		t.Errorf("status = %s", st.Status)
	}
}

func TestBackoffBounds(t *testing.T) {
	for n := range 40 {
		d := backoff(n)
		hi := min(backoffMin<<min(n, 10), backoffMax)
		if d < hi/2 || d >= hi {
			t.Fatalf("backoff(%d) = %v, want in [%v, %v)", n, d, hi/2, hi)
		}
	}
}

// A server that dies mid-command (the cleanup's UID MOVE, then a poll's
// UID FETCH) costs neither an arrival nor a duplicate, and the interrupted
// cleanup is finished on the next connection.
func TestWatcherDropMidCommand(t *testing.T) {
	ps := startPlain(t, &plainServer{folders: []string{"INBOX", "Trash"}})
	proxy := newDropProxy(t, ps.addr)
	mb := mailboxAt(proxy.addr(), "")
	mb.TLS, mb.Insecure = targets.TLSNone, true
	c := dialPlain(t, ps)
	col := newCollector("otp-move", "otp-fetch")
	wt := NewWatcher(WatchConfig{Mailbox: mb, Creds: staticCreds(testUser, testPassword), PollEvery: safetyNet}, Canaries(col.match, col.deliver))
	runWatcher(t, wt)
	eventually(t, "IDLE", func() bool { return wt.State().Status == WatchIdle })

	proxy.cutWhen("UID MOVE")
	appendRaw(t, c, "INBOX", canaryMsg("otp-move"), nil)
	col.next(t)
	eventually(t, "interrupted MOVE finished after reconnect", func() bool {
		return countMessages(t, ps, "INBOX") == 0 && countMessages(t, ps, "Trash") == 1
	})
	if wt.State().Reconnects < 1 {
		t.Fatal("the connection was not cut")
	}

	eventually(t, "IDLE again", func() bool { return wt.State().Status == WatchIdle })
	proxy.cutWhen("UID FETCH")
	appendRaw(t, c, "INBOX", canaryMsg("otp-fetch"), nil)
	if a := col.next(t); a.Token != "otp-fetch" {
		t.Fatalf("token = %q", a.Token)
	}
	eventually(t, "cleanup", func() bool { return countMessages(t, ps, "Trash") == 2 })
	if wt.State().Reconnects < 2 {
		t.Errorf("reconnects = %d, want 2", wt.State().Reconnects)
	}
	if col.count("otp-move") != 1 || col.count("otp-fetch") != 1 {
		t.Errorf("deliveries: move %d, fetch %d; want 1 each", col.count("otp-move"), col.count("otp-fetch"))
	}
}

// A server that stops answering without closing the connection (IDLE has
// no read deadline) is detected by the next safety-net poll's guard.
func TestWatcherSilentServer(t *testing.T) {
	w := newWorld(t).withProxy()
	col := newCollector("otp-after-silence")
	wt := NewWatcher(WatchConfig{Mailbox: w.mailbox(), Creds: staticCreds(testUser, testPassword), PollEvery: 200 * time.Millisecond}, Canaries(
		col.match, col.deliver))

	wt.cmdTimeout = 500 * time.Millisecond
	runWatcher(t, wt)
	eventually(t, "IDLE", func() bool { return wt.State().Status == WatchIdle })
	w.proxy.freeze(true)
	eventually(t, "silence detected", func() bool { return strings.Contains(wt.State().LastError, "server silent") })
	w.proxy.freeze(false)
	w.proxy.cut(false) // the frozen connections are dead anyway
	w.deliver("INBOX", canaryMsg("otp-after-silence"))
	if a := col.next(t); a.Token != "otp-after-silence" {
		t.Fatalf("token = %q", a.Token)
	}
}

// A burst of Pokes (an engine creating many attempts) costs about one
// poll per second, not one per Poke.
func TestWatcherCoalescesPokes(t *testing.T) {
	w := newWorld(t)
	wt := NewWatcher(WatchConfig{Mailbox: w.mailbox(), Creds: staticCreds(testUser, testPassword), PollEvery: time.Hour}, Canaries(
		func(string) bool { return false }, func(Arrival) {}))

	runWatcher(t, wt)
	eventually(t, "IDLE", func() bool { return wt.State().Status == WatchIdle })
	before := wt.State().Polls
	for range 200 {
		wt.Poke()
		time.Sleep(time.Millisecond)
	}
	eventually(t, "a poll after the pokes", func() bool { return wt.State().Polls > before })
	time.Sleep(pokeMinGap + pokeMinGap/2)
	if n := wt.State().Polls - before; n > 4 {
		t.Fatalf("%d polls for 200 pokes", n)
	}
}
