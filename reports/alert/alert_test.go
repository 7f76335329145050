package alert_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/reports/alert"
	"github.com/otpprobe/otpprobe/reports/rounds"
	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
	"github.com/otpprobe/otpprobe/verify"
)

const secret = "test-webhook-secret-0123456789"

// receiver is a webhook endpoint on loopback that checks signatures and
// can fail a number of requests first.
type receiver struct {
	srv *httptest.Server

	mu     sync.Mutex
	fail   int // answer 503 to this many more requests
	events []alert.Event
	bad    int
	heads  []http.Header
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := alert.Verify([]byte(secret), req.Header.Get(alert.HeaderTimestamp), req.Header.Get(alert.HeaderSignature), body, time.Now(), time.Minute); err != nil {
			r.bad++
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if r.fail > 0 {
			r.fail--
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		var e alert.Event
		if err := json.Unmarshal(body, &e); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.events = append(r.events, e)
		r.heads = append(r.heads, req.Header.Clone())
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) got() []alert.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]alert.Event(nil), r.events...)
}

func webhook(t *testing.T, url string) *alert.Webhook {
	w, err := alert.NewWebhook(targets.Webhook{Name: "test", URL: url, Timeout: 5 * time.Second}.WithSecret(secret))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func openStore(t *testing.T, path string) *store.SQLite {
	st, err := store.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func run(t *testing.T, m *alert.Manager) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func TestVerify(t *testing.T) {
	body := []byte(`{"type":"alert"}`)
	now := time.Unix(1_800_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := alert.Sign([]byte(secret), ts, body)
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != len("sha256=")+64 {
		t.Fatalf("signature %q", sig)
	}
	if err := alert.Verify([]byte(secret), ts, sig, body, now.Add(30*time.Second), time.Minute); err != nil {
		t.Errorf("valid signature: %v", err)
	}
	for name, err := range map[string]error{
		"tampered body": alert.Verify([]byte(secret), ts, sig, []byte(`{"type":"alerT"}`), now, time.Minute),
		"other secret":  alert.Verify([]byte("another-secret-0123456789"), ts, sig, body, now, time.Minute),
		"moved stamp":   alert.Verify([]byte(secret), strconv.FormatInt(now.Unix()+1, 10), sig, body, now, time.Minute),
	} {
		if !errors.Is(err, alert.ErrBadSignature) {
			t.Errorf("%s: %v, want ErrBadSignature", name, err)
		}
	}
	if err := alert.Verify([]byte(secret), ts, sig, body, now.Add(2*time.Minute), time.Minute); !errors.Is(err, alert.ErrStale) {
		t.Errorf("replayed after 2m: %v, want ErrStale", err)
	}
	if err := alert.Verify([]byte(secret), "yesterday", sig, body, now, time.Minute); !errors.Is(err, alert.ErrStale) {
		t.Errorf("bad timestamp: %v", err)
	}
}

// TestOutboxDedupRetryOrder: an alert fired twice is notified once; the
// receiver's failures are retried with backoff; firing arrives before
// resolved.
func TestOutboxDedupRetryOrder(t *testing.T) {
	rcv := newReceiver(t)
	rcv.fail = 2
	st := openStore(t, filepath.Join(t.TempDir(), "otpprobe.db"))
	var mu sync.Mutex
	results := map[string]int{}
	m, err := alert.New(context.Background(), alert.Options{Store: st, Notifiers: []alert.Notifier{webhook(t, rcv.srv.URL)},
		Agent: "eu-1", RetryBase: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond,
		Delivered: func(n, r string) { mu.Lock(); results[n+" "+r]++; mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	labels := map[string]string{"sender": "m365", "severity": "page"}
	a := alert.Alert{Name: alert.SenderDown, Labels: labels, Summary: "m365 down", Diagnosis: "gmail via m365: bounced", Evidence: []string{"a1"}}
	if err := m.Fire(ctx, a); err != nil {
		t.Fatal(err)
	}
	a.Evidence = []string{"a2"}
	if err := m.Fire(ctx, a); err != nil { // already firing: refreshed, not notified
		t.Fatal(err)
	}
	if f := m.Firing(); len(f) != 1 || f[0].Evidence[0] != "a2" {
		t.Errorf("firing %+v", f)
	}
	if err := m.Resolve(ctx, alert.SenderDown, labels, "m365 is back"); err != nil {
		t.Fatal(err)
	}
	if err := m.Resolve(ctx, alert.SenderDown, labels, ""); err != nil { // not firing: nothing
		t.Fatal(err)
	}
	run(t, m)
	waitFor(t, "two notifications", func() bool { return len(rcv.got()) >= 2 })
	time.Sleep(100 * time.Millisecond)
	got := rcv.got()
	if len(got) != 2 || got[0].Alert.Status != alert.Firing || got[1].Alert.Status != alert.Resolved {
		t.Fatalf("received %+v, want firing then resolved", got)
	}
	if got[0].Agent != "eu-1" || got[0].Alert.Diagnosis != "gmail via m365: bounced" || got[0].Alert.Evidence[0] != "a1" {
		t.Errorf("firing notification %+v", got[0].Alert)
	}
	if got[1].Alert.EndsAt.IsZero() || got[1].Alert.Summary != "m365 is back" {
		t.Errorf("resolved notification %+v", got[1].Alert)
	}
	if h := rcv.heads[0]; h.Get(alert.HeaderEvent) != "alert" || h.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", h)
	}
	mu.Lock()
	defer mu.Unlock()
	if results["webhook:test error"] != 2 || results["webhook:test ok"] != 2 {
		t.Errorf("delivery results %v, want 2 errors then 2 ok", results)
	}
	if n, _ := st.UndeliveredCount(ctx); n != 0 {
		t.Errorf("%d undelivered", n)
	}
}

// TestOutboxSurvivesRestart: notifications queued while the receiver is
// down are delivered by the next process, and a firing alert loaded from
// the store is not notified again.
func TestOutboxSurvivesRestart(t *testing.T) {
	rcv := newReceiver(t)
	rcv.fail = 1 << 30
	path := filepath.Join(t.TempDir(), "otpprobe.db")
	st := openStore(t, path)
	opts := alert.Options{Store: st, Notifiers: []alert.Notifier{webhook(t, rcv.srv.URL)}, RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond}
	m, err := alert.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a := alert.Alert{Name: alert.RouteFailedOver, Labels: map[string]string{"route": "otp"}, Summary: "on backup"}
	if err := m.Fire(ctx, a); err != nil {
		t.Fatal(err)
	}
	stop := run(t, m)
	time.Sleep(200 * time.Millisecond)
	stop()
	st.Close()

	rcv.mu.Lock()
	rcv.fail = 0
	rcv.mu.Unlock()
	st2 := openStore(t, path)
	opts.Store = st2
	var changed []alert.Alert
	opts.Changed = func(a alert.Alert) { changed = append(changed, a) }
	m2, err := alert.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 1 || changed[0].Name != alert.RouteFailedOver {
		t.Errorf("loaded firing alerts %+v", changed)
	}
	if err := m2.Fire(ctx, a); err != nil {
		t.Fatal(err)
	}
	run(t, m2)
	waitFor(t, "the queued notification", func() bool { return len(rcv.got()) >= 1 })
	time.Sleep(100 * time.Millisecond)
	if got := rcv.got(); len(got) != 1 || got[0].Alert.Status != alert.Firing {
		t.Errorf("received %+v, want the one firing notification", got)
	}
}

func TestAlertmanager(t *testing.T) {
	var mu sync.Mutex
	var posts [][]alert.PostableAlert
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v2/alerts" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "not the v2 API", http.StatusNotFound)
			return
		}
		var as []alert.PostableAlert
		if err := json.NewDecoder(r.Body).Decode(&as); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		posts = append(posts, as)
		mu.Unlock()
	}))
	defer srv.Close()
	am, err := alert.NewAlertmanager(targets.Alertmanager{Name: "am", URL: srv.URL + "/", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t, filepath.Join(t.TempDir(), "otpprobe.db"))
	m, err := alert.New(context.Background(), alert.Options{Store: st, Notifiers: []alert.Notifier{am}, Agent: "eu-1", Resend: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	labels := map[string]string{"sender": "m365", "provider": "outlook", "severity": "page"}
	if err := m.Fire(ctx, alert.Alert{Name: alert.ProviderSpam, Labels: labels, Summary: "spam", Diagnosis: "dkim=fail", Evidence: []string{"a1", "a2"}}); err != nil {
		t.Fatal(err)
	}
	stop := run(t, m)
	waitFor(t, "a firing post and a re-send", func() bool { mu.Lock(); defer mu.Unlock(); return len(posts) >= 2 })
	if err := m.Resolve(ctx, alert.ProviderSpam, labels, "inbox again"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the resolved post", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return posts[len(posts)-1][0].EndsAt != ""
	})
	stop()
	mu.Lock()
	defer mu.Unlock()
	first := posts[0][0]
	want := map[string]string{"alertname": "OTPProviderSpam", "agent": "eu-1", "sender": "m365", "provider": "outlook", "severity": "page"}
	for k, v := range want {
		if first.Labels[k] != v {
			t.Errorf("label %s = %q, want %q (labels %v)", k, first.Labels[k], v, first.Labels)
		}
	}
	if first.Annotations["diagnosis"] != "dkim=fail" || first.Annotations["evidence"] != "a1 a2" || first.EndsAt != "" || first.StartsAt == "" {
		t.Errorf("firing alert %+v", first)
	}
	last := posts[len(posts)-1][0]
	if _, err := time.Parse(time.RFC3339Nano, last.EndsAt); err != nil {
		t.Errorf("resolved endsAt %q: %v", last.EndsAt, err)
	}
}

// TestRules: consecutive observations turn into alerts and back.
func TestRules(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "otpprobe.db"))
	m, err := alert.New(context.Background(), alert.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	r := alert.NewRules(m, targets.Alerts{})
	ctx := context.Background()
	n := 0
	round := func(sender string, outcomes ...attempt.Outcome) {
		rd := rounds.Round{Probe: "otp", Sender: sender, Start: time.Now(), Providers: []string{"gmail", "outlook", "yahoo"}}
		for i, prov := range []string{"gmail", "yahoo", "outlook"} {
			n++
			a := &attempt.Attempt{ID: "a" + strconv.Itoa(n), Sender: sender, Mailbox: prov, Provider: prov, Outcome: outcomes[i]}
			if a.Outcome == attempt.OutcomeInbox || a.Outcome == attempt.OutcomeSpam {
				a.Verdicts = verify.Verdicts{Trusted: true, SPF: "pass", DKIM: "pass", DMARC: "pass"}
				if a.Outcome == attempt.OutcomeSpam {
					a.Verdicts.DKIM = "fail"
				}
			}
			rd.Attempts = append(rd.Attempts, a)
		}
		r.ObserveRound(ctx, rd)
	}
	firing := func() map[string]bool {
		out := map[string]bool{}
		for _, a := range m.Firing() {
			out[a.Name+" "+a.Labels["sender"]+" "+a.Labels["provider"]+" "+a.Labels["method"]] = true
		}
		return out
	}
	in, lost, spam, failed := attempt.OutcomeInbox, attempt.OutcomeLost, attempt.OutcomeSpam, attempt.OutcomeSendFailed
	round("m365", failed, failed, failed)
	if len(firing()) != 0 {
		t.Errorf("one failed round fired %v", firing())
	}
	round("m365", failed, failed, failed)
	if !firing()["OTPSenderDown m365  "] {
		t.Errorf("two failed rounds: firing %v", firing())
	}
	round("m365", in, lost, spam)
	if firing()["OTPSenderDown m365  "] {
		t.Error("SenderDown still firing after an inbox delivery")
	}
	round("m365", in, in, spam)
	f := firing()
	if !f["OTPProviderSpam m365 outlook "] || !f["OTPAuthVerdictRegression m365 outlook dkim"] {
		t.Errorf("two spam placements with dkim=fail: firing %v", f)
	}
	round("m365", in, in, in)
	if len(firing()) != 0 {
		t.Errorf("all healthy again, still firing %v", firing())
	}
}
