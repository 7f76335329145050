package probe

import (
	"context"
	"errors"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/otpprobe/otpprobe/targets"
	"github.com/otpprobe/otpprobe/token"
)

// A login the server refused is not retried every few seconds: providers
// lock accounts that keep failing (and Entra ID throttles apps whose
// refresh token was revoked). The wait doubles from loginBackoffBase up
// to the mailbox's login_backoff_max; a reload or RetryLogin (after
// `otpprobe auth test` proved the fix) ends it at once.
const loginBackoffBase = time.Minute

// authBackoff is the wait after the n-th consecutive refusal (n ≥ 1):
// base·2ⁿ⁻¹ capped at max, without jitter (one account, one watcher per
// folder: nothing to spread).
func authBackoff(n int, base, max time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

func (w *Watcher) loginBackoff() (base, max time.Duration) {
	base, max = w.cfg.LoginBackoffBase, w.cfg.Mailbox.LoginBackoffMax
	if max <= 0 {
		max = targets.DefaultLoginBackoffMax
	}
	if base <= 0 {
		base = loginBackoffBase
	}
	return min(base, max), max
}

// RetryLogin ends the wait of a watcher whose login was refused, so it
// logs in again now; it reports whether the watcher was waiting. Other
// watchers are left alone (their backoff is the network's).
func (w *Watcher) RetryLogin() bool {
	if !w.State().LoginRefused {
		return false
	}
	select {
	case w.retry <- struct{}{}:
	default:
	}
	return true
}

// refused records a refused login and returns the wait before the next.
func (w *Watcher) refused(err error) time.Duration {
	w.authStreak++
	base, max := w.loginBackoff()
	wait := authBackoff(w.authStreak, base, max)
	w.update(func(st *WatchState) {
		st.LoginRefused, st.LoginRefusals, st.RetryAt = true, w.authStreak, time.Now().Add(wait)
	})
	if w.cfg.OnAuth != nil {
		w.cfg.OnAuth(err, wait)
	}
	return wait
}

// loggedIn records a login the server accepted.
func (w *Watcher) loggedIn() {
	w.authStreak = 0
	w.update(func(st *WatchState) { st.LoginRefused, st.LoginRefusals, st.RetryAt = false, 0, time.Time{} })
	if w.cfg.OnAuth != nil {
		w.cfg.OnAuth(nil, 0)
	}
}

// waitRetry waits d, or less if ctx ends or RetryLogin is called; it
// reports false when ctx ended.
func (w *Watcher) waitRetry(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-w.retry:
		w.log.Info("imap watcher retrying its login now")
	}
	return true
}

// credentialsRefused reports whether a login failure is the credentials
// being refused — by the IMAP server (NO, or an XOAUTH2 error challenge)
// or by the token endpoint (invalid_grant, invalid_client) — rather than
// the network or a server failing.
func credentialsRefused(err error) bool {
	var refused *imap.Error
	var rejected *TokenRejection
	var te *token.Error
	return errors.As(err, &refused) || errors.As(err, &rejected) || (errors.As(err, &te) && te.Code != "")
}
