package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/reports/alert"
	"github.com/otpprobe/otpprobe/reports/health"
)

// TestLoginRefusedBacksOffAndAlerts runs the daemon against the lab with a
// wrong password for gmail: gmail's watchers are refused once each and
// then wait (an hour here), with otpprobe_watcher_up 0,
// otpprobe_watcher_login_refused 1, the refusal counted with cause auth,
// /readyz naming the cause, and OTPCredentialsRefused firing for gmail.
// Fixed and reloaded (SIGHUP), the new watchers log in and the alert
// resolves. Broken again, then fixed without a reload: `otpprobe auth
// test` logs in and asks the daemon to retry, the watchers connect at
// once and the alert resolves.
func TestLoginRefusedBacksOffAndAlerts(t *testing.T) {
	old := readyBudget
	readyBudget = time.Millisecond
	t.Cleanup(func() { readyBudget = old })

	w, err := lab.Start(context.Background(), lab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// auth test asks the prober at the config's http.listen to retry, so
	// the config names a real port: one that was free a moment ago.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfgPath, err := w.Endpoints().WriteConfig(lab.ConfigOptions{Dir: dir, Schedule: "@every 1h", Listen: addr})
	if err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(dir, "mailbox-gmail.password")
	good, err := os.ReadFile(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pwFile, []byte("Wr0ng-Password-not-printed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, context.Background(), cfgPath, daemonOptions{loginBackoffBase: time.Hour})
	defer func() {
		if code := d.Stop(); code != exitOK {
			t.Errorf("daemon exit %d", code)
		}
	}()
	get := d.Get
	metric := func(name, labels string) (float64, bool) {
		_, m := get("/metrics")
		re := regexp.MustCompile(`(?m)^otpprobe_` + name + `\{` + regexp.QuoteMeta(labels) + `\} (\S+)$`)
		s := re.FindStringSubmatch(m)
		if s == nil {
			return 0, false
		}
		v, _ := strconv.ParseFloat(s[1], 64)
		return v, true
	}
	const inbox = `agent="lab",folder="INBOX",mailbox="gmail"`
	firing := func() *alert.Alert {
		_, body := get("/api/v1/alerts")
		var as []alert.Alert
		json.Unmarshal([]byte(body), &as)
		for _, a := range as {
			if a.Name == alert.CredentialsRefused && a.Labels["mailbox"] == "gmail" {
				return &a
			}
		}
		return nil
	}
	eventually(t, "gmail's INBOX watcher refused", func() bool { v, ok := metric("watcher_login_refused", inbox); return ok && v == 1 })
	eventually(t, "OTPCredentialsRefused for gmail", func() bool { return firing() != nil })
	if v, _ := metric("watcher_up", inbox); v != 0 {
		t.Errorf("watcher_up = %v, want 0", v)
	}
	// Refused once and then waiting: not retried every few seconds.
	if v, _ := metric("watcher_login_failures_total", `agent="lab",cause="auth",folder="INBOX",mailbox="gmail"`); v != 1 {
		t.Errorf("auth login failures = %v, want 1", v)
	}
	if a := firing(); !strings.Contains(a.Diagnosis, "otpprobe auth test --mailbox gmail") || strings.Contains(a.Diagnosis+a.Summary, "Wr0ng-Password") {
		t.Errorf("alert: %+v", a)
	}
	var st health.Status
	_, body := get("/readyz")
	json.Unmarshal([]byte(body), &st)
	found := false
	for _, p := range st.Problems {
		found = found || (p.Name == "gmail/INBOX" && strings.HasPrefix(p.Reason, "auth: login refused 1 time(s)"))
	}
	if !found {
		t.Errorf("/readyz does not name the refused login: %s", body)
	}
	if v, ok := metric("watcher_login_refused", `agent="lab",folder="INBOX",mailbox="yahoo"`); !ok || v != 0 {
		t.Errorf("yahoo's watcher reported refused (%v, %v)", v, ok)
	}

	// A reload starts new watchers, without the backoff: fixed, they log in
	// and the alert (kept in the store across generations) resolves.
	if err := os.WriteFile(pwFile, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "gmail's INBOX watcher up after the reload", func() bool { v, _ := metric("watcher_up", inbox); return v == 1 })
	eventually(t, "OTPCredentialsRefused resolved after the reload", func() bool { return firing() == nil })

	// Broken again (and reloaded, so the watchers log in again): refused,
	// the alert fires again; the fix is proved by auth test, which makes
	// the daemon retry at once instead of in an hour.
	if err := os.WriteFile(pwFile, []byte("Wr0ng-Password-not-printed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "gmail's INBOX watcher refused again", func() bool { v, ok := metric("watcher_login_refused", inbox); return ok && v == 1 })
	eventually(t, "OTPCredentialsRefused again", func() bool { return firing() != nil })
	if err := os.WriteFile(pwFile, good, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, context.Background(), "auth", "test", "--config", cfgPath, "--mailbox", "gmail")
	if code != exitOK || !strings.Contains(out, "ok   imap gmail") || !strings.Contains(out, "ok   prober: the otpprobe at http://"+addr+" logs in again now: gmail/INBOX, gmail/junk") {
		t.Fatalf("auth test: exit %d\n%s%s", code, out, errOut)
	}
	eventually(t, "gmail's INBOX watcher up", func() bool { v, _ := metric("watcher_up", inbox); return v == 1 })
	eventually(t, "OTPCredentialsRefused resolved", func() bool { return firing() == nil })
	if v, _ := metric("watcher_login_refused", inbox); v != 0 {
		t.Errorf("watcher_login_refused = %v after the login", v)
	}
}
