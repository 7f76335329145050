package probe

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/verify"
)

// dsnMsg is an RFC 3464 bounce like the lab's senders write: the
// delivery-status part and the original header as text/rfc822-headers.
func dsnMsg(token, action, status, diag string) []byte {
	return []byte("From: Mail Delivery System <MAILER-DAEMON@mail-out.protection.outlook.test>\r\n" +
		"To: bounces@example-bank.test\r\n" +
		"Subject: Undelivered Mail Returned to Sender\r\n" +
		"Date: Mon, 23 Nov 2026 18:00:00 +0000\r\n" +
		"Message-ID: <dsn-" + token + "@mail-out.protection.outlook.test>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n" +
		"\r\n--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n" +
		"--b1\r\nContent-Type: message/delivery-status\r\n\r\n" +
		"Reporting-MTA: dns; mail-out.protection.outlook.test\r\n\r\n" +
		"Final-Recipient: rfc822; seed@gmail.test\r\n" +
		"Action: " + action + "\r\nStatus: " + status + "\r\n" +
		"Remote-MTA: dns; gmail-smtp-in.l.google.test\r\n" +
		"Diagnostic-Code: smtp; " + diag + "\r\n" +
		"--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n" +
		"From: otp@example-bank.test\r\nTo: seed@gmail.test\r\n" +
		"Subject: Your code [" + token + "]\r\nMessage-ID: <id-" + token + "@example-bank.test>\r\n" +
		"X-Otpprobe-Id: " + token + "\r\n" +
		"\r\n--b1--\r\n")
}

// A watcher with the DSN classifier reads messages whole over real IMAP,
// delivers only the failure DSNs of live attempts, cleans those up and
// leaves the rest.
func TestBounceWatcher(t *testing.T) {
	w := newWorld(t)
	w.deliver("INBOX", otherMsg("hello"))
	w.deliver("INBOX", dsnMsg("old1", "failed", "5.1.1", "550 5.1.1 no such user")) // before Run: found by the rescan
	var (
		mu  sync.Mutex
		got []Bounce
	)
	live := map[string]bool{"old1": true, "tok2": true, "tok3": true}
	find := func(d *verify.DSN) string {
		mu.Lock()
		defer mu.Unlock()
		if live[d.OriginalProbeID] {
			return d.OriginalProbeID
		}
		return ""
	}
	bw := NewWatcher(WatchConfig{Mailbox: w.mailbox(), Folder: "INBOX", Creds: staticCreds(testUser, testPassword), PollEvery: 50 * time.Millisecond},
		Bounces(find, func(b Bounce) {
			mu.Lock()
			got = append(got, b)
			mu.Unlock()
		}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { bw.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	w.deliver("INBOX", dsnMsg("tok2", "delayed", "4.4.1", "451 4.4.1 try later"))          // not a failure
	w.deliver("INBOX", dsnMsg("stranger", "failed", "5.7.1", "550 5.7.1 rejected"))        // not ours
	w.deliver("INBOX", dsnMsg("tok3", "failed", "5.7.26", "550-5.7.26 DMARC policy fail")) // ours
	bw.Poke()
	eventually(t, "two bounces", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 2 })
	polls := bw.State().Polls
	eventually(t, "three more polls", func() bool { return bw.State().Polls >= polls+3 }) // they must add nothing
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("got %d bounces, want 2: %+v", len(got), got)
	}
	byTok := map[string]Bounce{}
	for _, b := range got {
		byTok[b.Token] = b
	}
	b, ok := byTok["tok3"]
	if !ok || b.DSN.Recipients[0].Status != "5.7.26" || b.DSN.Recipients[0].RemoteMTA != "gmail-smtp-in.l.google.test" {
		t.Fatalf("tok3 bounce %+v", b)
	}
	if _, ok := byTok["old1"]; !ok {
		t.Error("the DSN delivered before Run was not found")
	}
	c := w.client()
	inbox := w.messages(c, "INBOX")
	if len(inbox) != 3 {
		t.Errorf("INBOX keeps %d messages, want 3 (other mail, the delay, the stranger's DSN)", len(inbox))
	}
	for _, m := range inbox {
		if strings.Contains(m.header, "dsn-tok3") || strings.Contains(m.header, "dsn-old1") {
			t.Errorf("matched DSN not cleaned up: %s", m.header)
		}
	}
}

// bounceTestStore keeps the last stored copy of each attempt.
type bounceTestStore struct {
	mu sync.Mutex
	m  map[string]attempt.Attempt
}

func (s *bounceTestStore) Create(_ context.Context, a *attempt.Attempt) error {
	return s.Update(nil, a)
}
func (s *bounceTestStore) Update(_ context.Context, a *attempt.Attempt) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[a.ID] = *a
	return nil
}
func (s *bounceTestStore) Get(_ context.Context, id string) (*attempt.Attempt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.m[id]
	if !ok {
		return nil, fmt.Errorf("%s: %w", id, attempt.ErrNotFound)
	}
	return &a, nil
}
func (s *bounceTestStore) Pending(context.Context, string) ([]*attempt.Attempt, error) {
	return nil, nil
}
func (s *bounceTestStore) List(context.Context, attempt.Filter) ([]*attempt.Attempt, error) {
	return nil, nil
}

// A bounce decides its attempt (found by X-Otpprobe-Id, Subject token or
// Message-ID) with the DSN's status in SMTP; the submission reply is kept
// in Detail; a DSN for a decided attempt changes nothing.
func TestEngineOnBounce(t *testing.T) {
	st := &bounceTestStore{m: map[string]attempt.Attempt{}}
	e := &Engine{opts: Options{Store: st}, log: slog.New(slog.DiscardHandler), flights: newInflight()}
	add := func(tok, msgID string) *attempt.Attempt {
		a := &attempt.Attempt{ID: "id-" + tok, Token: tok, MessageID: msgID, SMTP: attempt.SMTPResult{Code: 250, Reply: "250 queued as X"}}
		e.flights.add(newFlight(a, false))
		return a
	}
	add("aaa", "m1@example-bank.test")
	add("bbb", "m2@example-bank.test")
	add("ccc", "m3@example-bank.test")
	for _, tc := range []struct {
		d    verify.DSN
		want string
	}{
		{verify.DSN{OriginalProbeID: "aaa"}, "aaa"},
		{verify.DSN{OriginalSubject: "Your code [zzz] [bbb]"}, "bbb"},
		{verify.DSN{OriginalSubject: "Undeliverable: [re [bbb]"}, "bbb"},
		{verify.DSN{OriginalMessageID: "<M3@example-bank.test>"}, "ccc"},
		{verify.DSN{OriginalProbeID: "nope", OriginalSubject: "no token"}, ""},
	} {
		if got := e.bounceToken(&tc.d); got != tc.want {
			t.Errorf("bounceToken(%+v) = %q, want %q", tc.d, got, tc.want)
		}
	}
	d := &verify.DSN{Recipients: []verify.DSNRecipient{
		{Action: "delivered", Status: "2.0.0"},
		{Action: "failed", Status: "5.7.26", DiagnosticCode: "smtp; 550 5.7.26 DMARC", RemoteMTA: "gmail-smtp-in.l.google.test"},
	}}
	e.onBounce(Bounce{Token: "aaa", DSN: d})
	a, err := st.Get(context.Background(), "id-aaa")
	if err != nil {
		t.Fatal(err)
	}
	if a.Outcome != attempt.OutcomeBounced || a.SMTP.Stage != attempt.StageBounce || a.SMTP.Code != 550 || a.SMTP.Enhanced != "5.7.26" ||
		!strings.Contains(a.SMTP.Reply, "remote MTA gmail-smtp-in.l.google.test") {
		t.Fatalf("attempt %+v", a)
	}
	var detail struct {
		Bounce struct {
			SubmissionReply string      `json:"submission_reply"`
			DSN             *verify.DSN `json:"dsn"`
		} `json:"bounce"`
	}
	if err := json.Unmarshal([]byte(a.Detail), &detail); err != nil || detail.Bounce.SubmissionReply != "250 queued as X" || detail.Bounce.DSN == nil {
		t.Errorf("detail %s (%v)", a.Detail, err)
	}
	if e.flights.match("aaa") != nil {
		t.Error("bounced attempt still live")
	}
	a.SMTP.Reply = "changed"
	st.Update(nil, a)
	e.onBounce(Bounce{Token: "aaa", DSN: d}) // a second DSN for it
	if a2, _ := st.Get(context.Background(), "id-aaa"); a2.SMTP.Reply != "changed" {
		t.Error("a second DSN re-decided the attempt")
	}
}

func TestDiagnosticCode(t *testing.T) {
	for in, want := range map[string]int{
		"smtp; 550 5.7.26 Unauthenticated": 550,
		"smtp;554-5.7.9 policy":            554,
		"X-Postfix; host said: 550":        0,
		"":                                 0,
		"smtp; 999 odd":                    0,
	} {
		if got := diagnosticCode(in); got != want {
			t.Errorf("diagnosticCode(%q) = %d, want %d", in, got, want)
		}
	}
}

// An NDR quoting the canary's Subject carries its token; the seed
// mailbox watchers must not count it as the canary.
func TestBounceArrivalIgnored(t *testing.T) {
	ndr := []byte("From: postmaster@outlook.test\r\nReturn-Path: <>\r\nSubject: Undeliverable: Your code [tok]\r\nX-MS-Exchange-Message-Is-Ndr: \r\n\r\n")
	if !isBounceArrival(ndr) {
		t.Error("NDR not recognised")
	}
	if isBounceArrival(canaryMsg("tok")) {
		t.Error("canary taken for a bounce")
	}
}

// gatedStore holds the first pending Update until released: the window in
// which finishSend stores a submission with the engine's lock let go.
type gatedStore struct {
	bounceTestStore
	entered, release chan struct{}
	once             sync.Once
}

func (s *gatedStore) Update(ctx context.Context, a *attempt.Attempt) error {
	if a.Outcome == attempt.OutcomePending {
		s.once.Do(func() { close(s.entered); <-s.release })
	}
	return s.bounceTestStore.Update(ctx, a)
}

// A DSN that arrives while the submission is still being stored must not be
// overwritten by the pending row: the attempt ends bounced, stored and
// published once.
func TestBounceDuringSubmission(t *testing.T) {
	st := &gatedStore{bounceTestStore: bounceTestStore{m: map[string]attempt.Attempt{}}, entered: make(chan struct{}), release: make(chan struct{})}
	var mu sync.Mutex
	var published []attempt.Outcome
	e := &Engine{opts: Options{Store: st, Observers: []func(*attempt.Attempt){func(a *attempt.Attempt) {
		mu.Lock()
		defer mu.Unlock()
		published = append(published, a.Outcome)
	}}}, log: slog.New(slog.DiscardHandler), flights: newInflight()}
	a := &attempt.Attempt{ID: "id-ddd", Token: "ddd", Outcome: attempt.OutcomePending}
	e.flights.add(newFlight(a, true))
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.finishSend(context.Background(), a, &SendResult{SubmittedAt: time.Now(), Reply: "250 queued as Y"}, nil)
	}()
	<-st.entered
	d := &verify.DSN{Recipients: []verify.DSNRecipient{{Action: "failed", Status: "5.1.1", DiagnosticCode: "smtp; 550 5.1.1 no such user"}}}
	bounced := make(chan struct{})
	go func() { // returns only once the bounce is stored: the watcher then removes the DSN
		defer close(bounced)
		e.onBounce(Bounce{Token: "ddd", DSN: d})
	}()
	time.Sleep(20 * time.Millisecond) // let an early decision land before the pending row
	select {
	case <-bounced:
		if got, _ := st.Get(context.Background(), "id-ddd"); got.Outcome != attempt.OutcomeBounced {
			t.Errorf("onBounce returned before the bounce was stored (%s)", got.Outcome)
		}
	default:
	}
	close(st.release)
	<-done
	<-bounced
	got, err := st.Get(context.Background(), "id-ddd")
	if err != nil {
		t.Fatal(err)
	}
	if got.Outcome != attempt.OutcomeBounced || got.SMTP.Enhanced != "5.1.1" || !strings.Contains(got.Detail, "250 queued as Y") {
		t.Errorf("stored attempt: outcome %q, smtp %+v, detail %s", got.Outcome, got.SMTP, got.Detail)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(published) != 1 || published[0] != attempt.OutcomeBounced {
		t.Errorf("published %v, want one bounced", published)
	}
	if e.flights.match("ddd") != nil {
		t.Error("bounced attempt still live")
	}
}

// A submission cut short because the prober stops is not a send failure:
// the attempt stays pending (stored for the next start, watched until its
// deadline) and nothing is published.
func TestSendInterruptedByShutdown(t *testing.T) {
	st := &bounceTestStore{m: map[string]attempt.Attempt{}}
	published := 0
	e := &Engine{opts: Options{Store: st, Observers: []func(*attempt.Attempt){func(*attempt.Attempt) { published++ }}},
		log: slog.New(slog.DiscardHandler), flights: newInflight()}
	a := &attempt.Attempt{ID: "id-eee", Token: "eee", Outcome: attempt.OutcomePending}
	if err := st.Create(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	e.flights.add(newFlight(a, true))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e.finishSend(ctx, a, nil, newSendError(ctx, StageData, context.Canceled))
	got, err := st.Get(context.Background(), "id-eee")
	if err != nil {
		t.Fatal(err)
	}
	if got.Outcome != attempt.OutcomePending || published != 0 {
		t.Errorf("stored outcome %q, published %d times; want pending and unpublished", got.Outcome, published)
	}
	if f := e.flights.match("eee"); f == nil || f.sending {
		t.Errorf("interrupted attempt %+v: want it watched like a resumed one", f)
	}
}
