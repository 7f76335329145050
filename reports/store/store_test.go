package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/verify"
)

// runConformance runs the behaviour every attempt.Store must have against
// stores made by open, each test on an empty one.
func runConformance(t *testing.T, open func(t *testing.T) attempt.Store) {
	for name, test := range map[string]func(*testing.T, attempt.Store){
		"RoundTrip":      testRoundTrip,
		"Errors":         testErrors,
		"ListAndPending": testListAndPending,
		"Concurrent":     testConcurrent,
		"Pages":          testPages,
		"Agents":         testAgents,
	} {
		t.Run(name, func(t *testing.T) { test(t, open(t)) })
	}
}

var (
	testProbes    = []string{"otp", "marketing"}
	testSenders   = []string{"m365", "backup", "ses"}
	testMailboxes = []string{"gmail-1", "yahoo-1", "outlook-1", "gmail-2"}
	testBase      = time.Date(2026, 11, 23, 10, 0, 0, 123_456_789, time.UTC)
)

// newAttempt is attempt i as the engine stores it before sending:
// deterministic, so a reader can tell what it must look like.
func newAttempt(i int) *attempt.Attempt {
	mb := testMailboxes[i%len(testMailboxes)]
	return &attempt.Attempt{
		ID:         fmt.Sprintf("0193a6f2-%04x-7000-8000-%012x", i%0x10000, i),
		RoundID:    fmt.Sprintf("0193a6f2-0000-7000-9000-%012x", i/6),
		Probe:      testProbes[i%len(testProbes)],
		Sender:     testSenders[i%len(testSenders)],
		Mailbox:    mb,
		Provider:   strings.TrimSuffix(strings.TrimSuffix(mb, "-1"), "-2"),
		Token:      fmt.Sprintf("tok%09d", i),
		Code:       fmt.Sprintf("%06d", (i*7919)%1_000_000),
		MessageID:  fmt.Sprintf("%d@mail.example.com", i),
		CreatedAt:  testBase.Add(time.Duration(i) * 1500 * time.Millisecond),
		Deadline:   testBase.Add(time.Duration(i)*1500*time.Millisecond + 10*time.Minute),
		LatencySLO: 60 * time.Second,
		Outcome:    attempt.OutcomePending,
	}
}

var finalOutcomes = []attempt.Outcome{attempt.OutcomeInbox, attempt.OutcomeSpam, attempt.OutcomeLost, attempt.OutcomeSendFailed, attempt.OutcomeBounced}

// finish fills what the engine learns after the send.
func finish(a *attempt.Attempt, i int) {
	a.Outcome = finalOutcomes[i%len(finalOutcomes)]
	a.SubmittedAt = a.CreatedAt.Add(850*time.Millisecond + 3*time.Microsecond)
	a.SMTP = attempt.SMTPResult{Code: 250, Enhanced: "2.0.0", Reply: fmt.Sprintf("OK queued as Q%d", i)}
	a.Transcript = "C: EHLO probe\r\nS: 250-mx\r\nC: AUTH PLAIN [redacted]\r\n"
	a.Diagnosis = "ok"
	a.Detail = `{"dsn":null}`
	switch a.Outcome {
	case attempt.OutcomeInbox, attempt.OutcomeSpam:
		a.Folder = map[attempt.Outcome]string{attempt.OutcomeInbox: "INBOX", attempt.OutcomeSpam: "[Gmail]/Spam"}[a.Outcome]
		a.SeenAt = a.SubmittedAt.Add(time.Duration(i%90) * time.Second)
		a.Late = i%90 > 60
		a.InternalDate = a.SeenAt.Add(-time.Second).Truncate(time.Second)
		a.ReceivedAt = a.SeenAt.Add(-400 * time.Millisecond)
		a.Header = "Authentication-Results: mx.google.com;\r\n spf=pass smtp.mailfrom=example.com\r\nSubject: Your code tok\r\n"
		a.Verdicts = verify.Verdicts{Trusted: true, AuthservID: "mx.google.com", SPF: "pass", DKIM: "pass", DMARC: "pass", ARC: "none"}
	case attempt.OutcomeSendFailed:
		a.SMTP = attempt.SMTPResult{Stage: "rcpt", Code: 550, Enhanced: "5.7.1", Reply: "relay denied"}
	}
}

// stored is what a round trip through the store must return for a.
func stored(a *attempt.Attempt) *attempt.Attempt {
	c := *a
	for _, t := range []*time.Time{&c.CreatedAt, &c.Deadline, &c.SubmittedAt, &c.SeenAt, &c.InternalDate, &c.ReceivedAt} {
		if !t.IsZero() {
			*t = t.Truncate(time.Millisecond).UTC()
		}
	}
	c.LatencySLO = c.LatencySLO.Truncate(time.Millisecond)
	return &c
}

func mustEqual(t *testing.T, got, want *attempt.Attempt) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("attempt %s differs:\n got %+v\nwant %+v", want.ID, got, want)
	}
}

func testRoundTrip(t *testing.T, s attempt.Store) {
	ctx := context.Background()

	a := newAttempt(1)
	// A local-zone time with sub-millisecond digits comes back as UTC ms.
	a.CreatedAt = time.Date(2026, 11, 23, 12, 30, 0, 987_654_321, time.FixedZone("CET", 3600))
	if err := s.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, stored(a))
	if got.CreatedAt.Location() != time.UTC || got.CreatedAt.Nanosecond() != 987_000_000 || got.CreatedAt.Hour() != 11 {
		t.Fatalf("CreatedAt = %v, want 11:30:00.987 UTC", got.CreatedAt)
	}
	if !got.SeenAt.IsZero() || !got.SubmittedAt.IsZero() {
		t.Fatalf("zero times came back as %v / %v", got.SeenAt, got.SubmittedAt)
	}

	for _, i := range []int{0, 1, 3} { // inbox, spam, send_failed
		finish(a, i)
		a.Late = true
		if err := s.Update(ctx, a); err != nil {
			t.Fatal(err)
		}
		got, err = s.Get(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, got, stored(a))
	}
}

func testErrors(t *testing.T, s attempt.Store) {
	ctx := context.Background()
	a := newAttempt(7)
	if err := s.Create(ctx, a); err != nil {
		t.Fatal(err)
	}

	err := s.Create(ctx, newAttempt(7))
	if !errors.Is(err, ErrDuplicate) || !strings.Contains(err.Error(), a.ID) {
		t.Errorf("duplicate Create: %v, want ErrDuplicate naming the ID", err)
	}
	if err := s.Update(ctx, newAttempt(8)); !errors.Is(err, attempt.ErrNotFound) {
		t.Errorf("Update of an unknown ID: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, attempt.ErrNotFound) {
		t.Errorf("Get of an unknown ID: %v, want ErrNotFound", err)
	}
	noID := newAttempt(9)
	noID.ID = ""
	noTime := newAttempt(10)
	noTime.CreatedAt = time.Time{}
	for name, bad := range map[string]*attempt.Attempt{"attempt is nil": nil, "ID is empty": noID, "CreatedAt is zero": noTime} {
		if err := s.Create(ctx, bad); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Create: %v, want an error saying %q", err, name)
		}
		if err := s.Update(ctx, bad); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Update: %v, want an error saying %q", err, name)
		}
	}
	if _, err := s.List(ctx, attempt.Filter{Limit: -1}); err == nil {
		t.Error("List with a negative limit succeeded")
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Create(canceled, newAttempt(11)); !errors.Is(err, context.Canceled) {
		t.Errorf("Create with a canceled context: %v", err)
	}
	if _, err := s.List(canceled, attempt.Filter{}); !errors.Is(err, context.Canceled) {
		t.Errorf("List with a canceled context: %v", err)
	}
	if _, err := s.Get(ctx, newAttempt(11).ID); !errors.Is(err, attempt.ErrNotFound) {
		t.Errorf("the canceled Create stored something: %v", err)
	}
	// The original is untouched by the failed duplicate.
	got, err := s.Get(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, stored(a))
}

func testListAndPending(t *testing.T, s attempt.Store) {
	ctx := context.Background()
	const n = 300
	var all []*attempt.Attempt
	// Created out of order, so ordering comes from the query.
	for _, i := range scrambled(n) {
		a := newAttempt(i)
		if i%3 != 0 {
			finish(a, i)
		}
		if err := s.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		a := newAttempt(i)
		if i%3 != 0 {
			finish(a, i)
		}
		all = append(all, stored(a))
	}

	at := func(i int) time.Time { return newAttempt(i).CreatedAt }
	filters := []attempt.Filter{
		{},
		{Limit: 10},
		{From: at(100)},
		{To: at(100)},
		{From: at(50), To: at(60)},
		{From: at(50).Add(time.Millisecond), To: at(60).Add(time.Millisecond)},
		{Probe: "otp"},
		{Sender: "backup"},
		{Mailbox: "yahoo-1"},
		{Outcome: attempt.OutcomeSpam},
		{Outcome: attempt.OutcomePending},
		{Sender: "m365", Mailbox: "gmail-1", Outcome: attempt.OutcomeInbox},
		{Probe: "marketing", Sender: "ses", From: at(20), To: at(250), Limit: 5},
		{Sender: "nobody"},
		{RoundID: newAttempt(42).RoundID},
	}
	for _, f := range filters {
		// Bounds count at millisecond resolution, like stored times.
		from, to := f.From.Truncate(time.Millisecond), f.To.Truncate(time.Millisecond)
		var want []*attempt.Attempt
		for _, a := range all {
			if (from.IsZero() || !a.CreatedAt.Before(from)) && (to.IsZero() || a.CreatedAt.Before(to)) &&
				(f.Probe == "" || a.Probe == f.Probe) && (f.Sender == "" || a.Sender == f.Sender) &&
				(f.Mailbox == "" || a.Mailbox == f.Mailbox) && (f.Outcome == "" || a.Outcome == f.Outcome) &&
				(f.RoundID == "" || a.RoundID == f.RoundID) {
				want = append(want, a)
			}
		}
		if f.Limit > 0 && len(want) > f.Limit {
			want = want[:f.Limit]
		}
		got, err := s.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("List(%+v): got %d attempts, want %d (%v vs %v)", f, len(got), len(want), ids(got), ids(want))
		}
	}

	pending, err := s.Pending(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var wantPending []*attempt.Attempt
	for _, a := range all {
		if !a.Outcome.Final() {
			wantPending = append(wantPending, a)
		}
	}
	if len(wantPending) != n/3 || !reflect.DeepEqual(pending, wantPending) {
		t.Fatalf("Pending: got %d %v, want %d %v", len(pending), ids(pending), len(wantPending), ids(wantPending))
	}
	// Deciding one takes it out of Pending.
	a := newAttempt(0)
	finish(a, 0)
	if err := s.Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	pending, err = s.Pending(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != n/3-1 || pending[0].ID != newAttempt(3).ID {
		t.Fatalf("after deciding attempt 0, Pending = %v", ids(pending))
	}
}

// scrambled returns 0..n-1 in a fixed scrambled order.
func scrambled(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = (i*7 + 3) % n
	}
	if n%7 == 0 {
		panic("n must be prime to 7")
	}
	return out
}

func ids(as []*attempt.Attempt) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.ID[len(a.ID)-4:]
	}
	return out
}

// TestConcurrent runs writers and readers at once; run it under -race.
func testConcurrent(t *testing.T, s attempt.Store) {
	ctx := context.Background()
	const writers, perWriter, readers = 8, 40, 4

	var wg sync.WaitGroup
	errc := make(chan error, writers+readers)
	done := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			for j := range perWriter {
				i := w*perWriter + j
				a := newAttempt(i)
				if err := s.Create(ctx, a); err != nil {
					errc <- err
					return
				}
				finish(a, i)
				if err := s.Update(ctx, a); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	var rg sync.WaitGroup
	for r := range readers {
		rg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				var err error
				switch r % 3 {
				case 0:
					_, err = s.List(ctx, attempt.Filter{Sender: "m365"})
				case 1:
					_, err = s.Pending(ctx, "")
				default:
					_, err = s.Get(ctx, newAttempt(r).ID)
					if errors.Is(err, attempt.ErrNotFound) {
						err = nil
					}
				}
				if err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	rg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}

	all, err := s.List(ctx, attempt.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != writers*perWriter {
		t.Fatalf("stored %d attempts, want %d", len(all), writers*perWriter)
	}
	for i, a := range all {
		want := newAttempt(i)
		finish(want, i)
		mustEqual(t, a, stored(want))
	}
	if p, err := s.Pending(ctx, ""); err != nil || len(p) != 0 {
		t.Fatalf("Pending after all updates: %d, %v", len(p), err)
	}
}

// testAgents: attempts keep the agent that stored them; List filters by
// it; Pending gives an agent its own undecided attempts where agents
// share the store (PostgreSQL), after handing the agent-less ones (stored
// before attempts had an agent) to the first agent that asks, and every
// undecided attempt on SQLite (one agent per file).
func testAgents(t *testing.T, s attempt.Store) {
	ctx := context.Background()
	agents := []string{"eu", "us", ""}
	for i := range 9 {
		a := newAttempt(i)
		a.Agent = agents[i%3]
		if i >= 6 {
			finish(a, i)
		}
		if err := s.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Get(ctx, newAttempt(1).ID)
	if err != nil || got.Agent != "us" {
		t.Fatalf("Get: agent %q, %v; want us", got.Agent, err)
	}
	list, err := s.List(ctx, attempt.Filter{Agent: "eu"})
	if err != nil || !reflect.DeepEqual(ids(list), []string{"0000", "0003", "0006"}) {
		t.Fatalf("List(agent eu) = %v, %v", ids(list), err)
	}
	pg := s.(*DB).pg
	want := map[string][]int{"eu": {0, 3}, "us": {1, 4}}
	if !pg {
		want = map[string][]int{"eu": {0, 1, 2, 3, 4, 5}, "us": {0, 1, 2, 3, 4, 5}}
	}
	for _, agent := range []string{"eu", "us"} {
		pending, err := s.Pending(ctx, agent)
		if err != nil {
			t.Fatal(err)
		}
		w := want[agent]
		if agent == "eu" && pg { // eu asks first: it also gets the agent-less 2 and 5
			w = []int{0, 2, 3, 5}
		}
		var wantIDs []string
		for _, i := range w {
			wantIDs = append(wantIDs, ids([]*attempt.Attempt{newAttempt(i)})[0])
		}
		if !reflect.DeepEqual(ids(pending), wantIDs) {
			t.Errorf("Pending(%s) on pg=%v: %v, want %v", agent, pg, ids(pending), wantIDs)
		}
	}
	if pg {
		if a, err := s.Get(ctx, newAttempt(2).ID); err != nil || a.Agent != "eu" {
			t.Errorf("the agent-less pending attempt claimed by %q, %v; want eu", a.Agent, err)
		}
		if a, err := s.Get(ctx, newAttempt(8).ID); err != nil || a.Agent != "" {
			t.Errorf("a decided agent-less attempt got agent %q, %v; it must keep ''", a.Agent, err)
		}
	}
}
