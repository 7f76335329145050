package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/reports/health"
)

// TestIMAPOutageReadiness runs the daemon against the lab: when gmail's
// IMAP service goes down, otpprobe_watcher_up for gmail's INBOX drops to
// 0 and /readyz answers 503 naming that watcher; when it is back, the
// gauge is 1 again and /readyz 200.
func TestIMAPOutageReadiness(t *testing.T) {
	old := readyBudget
	readyBudget = 2 * time.Second
	t.Cleanup(func() { readyBudget = old })

	w, err := lab.Start(context.Background(), lab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	cfgPath, err := w.Endpoints().WriteConfig(lab.ConfigOptions{Dir: t.TempDir(), Schedule: "@every 1h", Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, context.Background(), cfgPath, daemonOptions{})
	defer func() {
		if code := d.Stop(); code != exitOK {
			t.Errorf("daemon exit %d", code)
		}
	}()
	get := d.Get
	const up, down = `otpprobe_watcher_up{agent="lab",folder="INBOX",mailbox="gmail"} 1`, `otpprobe_watcher_up{agent="lab",folder="INBOX",mailbox="gmail"} 0`
	waitUntil := func(what string, ok func() bool) { t.Helper(); waitFor(t, 90*time.Second, what, ok) }
	ready := func() (int, health.Status) {
		code, body := get("/readyz")
		var st health.Status
		json.Unmarshal([]byte(body), &st)
		return code, st
	}
	waitUntil("gmail's INBOX watcher up", func() bool { _, m := get("/metrics"); return strings.Contains(m, up) })
	waitUntil("/readyz 200", func() bool { c, _ := ready(); return c == http.StatusOK })

	if err := w.Apply("imap-outage"); err != nil {
		t.Fatal(err)
	}
	waitUntil("gmail's INBOX watcher down", func() bool { _, m := get("/metrics"); return strings.Contains(m, down) })
	waitUntil("/readyz 503 naming gmail/INBOX", func() bool {
		c, st := ready()
		if c != http.StatusServiceUnavailable {
			return false
		}
		for _, p := range st.Problems {
			if p.Component == "watcher" && p.Name == "gmail/INBOX" && p.Reason != "" {
				return true
			}
		}
		return false
	})
	_, st := ready()
	for _, p := range st.Problems {
		if !strings.HasPrefix(p.Name, "gmail/") {
			t.Errorf("a watcher of another mailbox is reported down: %+v", p)
		}
	}
	if _, m := get("/metrics"); !strings.Contains(m, `otpprobe_watcher_login_failures_total{agent="lab",cause="dial",folder="INBOX",mailbox="gmail"}`) {
		t.Errorf("no login failure series for gmail's INBOX")
	}

	if err := w.Apply(lab.Healthy); err != nil {
		t.Fatal(err)
	}
	waitUntil("gmail's INBOX watcher up again", func() bool { _, m := get("/metrics"); return strings.Contains(m, up) })
	waitUntil("/readyz 200 again", func() bool { c, _ := ready(); return c == http.StatusOK })
}
