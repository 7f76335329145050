package probe

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/otpprobe/otpprobe/token"
)

// authEvents records what a watcher reports about its logins.
type authEvents struct {
	mu       sync.Mutex
	waits    []time.Duration // the wait after each refusal, in order
	accepted int
	causes   map[string]int
}

func (a *authEvents) onAuth(refused error, retryIn time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if refused == nil {
		a.accepted++
		return
	}
	a.waits = append(a.waits, retryIn)
}

func (a *authEvents) onLoginFailure(cause string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.causes[cause]++
}

func (a *authEvents) snapshot() ([]time.Duration, int, map[string]int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := map[string]int{}
	for k, v := range a.causes {
		c[k] = v
	}
	return append([]time.Duration(nil), a.waits...), a.accepted, c
}

// TestWatcherLoginBackoff: the lab's IMAP server refuses the password;
// each refusal doubles the watcher's wait from the base up to the
// mailbox's login_backoff_max and is counted with cause auth, and the
// watcher reports itself refused. Once the password is right, RetryLogin
// ends the wait (which would be an hour here) and the watcher connects.
func TestWatcherLoginBackoff(t *testing.T) {
	w := newWorld(t)
	var password atomic.Value
	password.Store("Wr0ng-Secret-Value")
	creds := func(context.Context) (string, string, error) { return testUser, password.Load().(string), nil }

	// Growth and ceiling, observed through the waits the watcher chose.
	ev := &authEvents{causes: map[string]int{}}
	mb := w.mailbox()
	mb.LoginBackoffMax = 80 * time.Millisecond
	wt := NewWatcher(WatchConfig{Mailbox: mb, Creds: creds, LoginBackoffBase: 10 * time.Millisecond,
		OnAuth: ev.onAuth, OnLoginFailure: ev.onLoginFailure}, Canaries(func(string) bool { return true }, func(Arrival) {}))
	runWatcher(t, wt)
	eventually(t, "six refused logins", func() bool { waits, _, _ := ev.snapshot(); return len(waits) >= 6 })
	waits, accepted, causes := ev.snapshot()
	want := []time.Duration{10, 20, 40, 80, 80, 80}
	for i, d := range want {
		if waits[i] != d*time.Millisecond {
			t.Fatalf("waits after refusals = %v, want %v ms (doubling to the ceiling)", waits[:6], want)
		}
	}
	st := wt.State()
	if !st.LoginRefused || st.LoginRefusals < 6 || st.Connected || accepted != 0 || causes["auth"] < 6 || len(causes) != 1 {
		t.Fatalf("state %+v, accepted %d, causes %v", st, accepted, causes)
	}

	// A long wait ended by RetryLogin once the password is fixed.
	ev2 := &authEvents{causes: map[string]int{}}
	mb.LoginBackoffMax = time.Hour
	slow := NewWatcher(WatchConfig{Mailbox: mb, Creds: creds, LoginBackoffBase: time.Hour, OnAuth: ev2.onAuth, OnLoginFailure: ev2.onLoginFailure},
		Canaries(func(string) bool { return true }, func(Arrival) {}))
	if slow.RetryLogin() {
		t.Error("RetryLogin woke a watcher that was not refused")
	}
	runWatcher(t, slow)
	eventually(t, "the first refusal", func() bool { return slow.State().LoginRefused })
	if st := slow.State(); time.Until(st.RetryAt) < 50*time.Minute {
		t.Fatalf("next try at %v, want an hour away", st.RetryAt)
	}
	password.Store(testPassword)
	if !slow.RetryLogin() {
		t.Fatal("RetryLogin: the refused watcher was not waiting")
	}
	eventually(t, "the watcher connected", func() bool { return slow.State().Connected })
	st = slow.State()
	waits, accepted, causes = ev2.snapshot()
	if st.LoginRefused || st.LoginRefusals != 0 || len(waits) != 1 || accepted != 1 || causes["auth"] != 1 {
		t.Fatalf("after the retry: state %+v, waits %v, accepted %d, causes %v", st, waits, accepted, causes)
	}
}

// TestLoginFailureCause: what counts as the credentials being refused.
func TestLoginFailureCause(t *testing.T) {
	login := func(err error) error { return &IMAPError{Stage: StageLogin, Mailbox: "m", Err: err} }
	for _, tc := range []struct {
		err  error
		want string
	}{
		{login(&imap.Error{Type: imap.StatusResponseTypeNo, Text: "authentication failed"}), "auth"},
		{login(&TokenRejection{Status: "401"}), "auth"},
		{login(fmt.Errorf("credentials: %w", &token.Error{Status: 400, Code: "invalid_grant"})), "auth"},
		{login(fmt.Errorf("credentials: %w", &token.Error{Err: errors.New("connection refused")})), "login"}, // the token endpoint is down
		{login(errors.New("connection reset")), "login"},
		{&IMAPError{Stage: StageDial, Err: errors.New("refused")}, "dial"},
		{&IMAPError{Stage: StageSelect, Err: errors.New("x")}, ""},
	} {
		if got := loginFailure(tc.err); got != tc.want {
			t.Errorf("loginFailure(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	if d := authBackoff(40, time.Minute, 30*time.Minute); d != 30*time.Minute {
		t.Errorf("authBackoff(40) = %v, want the 30m ceiling", d)
	}
}
