package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/otpprobe/otpprobe/lab"
)

// TestReloadOnSIGHUP: kill -HUP applies a changed schedule without a
// restart; a broken config is refused by field and the old one keeps
// running; otpprobe_config_last_reload_successful says which.
func TestReloadOnSIGHUP(t *testing.T) {
	w, err := lab.Start(context.Background(), lab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	dir := t.TempDir()
	// Hourly: no round runs during the test until the reload.
	cfgPath, err := w.Endpoints().WriteConfig(lab.ConfigOptions{Dir: dir, Schedule: "@every 1h", Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, context.Background(), cfgPath, daemonOptions{})
	logs, metrics := d.Logs, d.Metrics
	reloadOK := regexp.MustCompile(`(?m)^otpprobe_config_last_reload_successful\{agent="lab"\} (\d)`)
	reloaded := func(want string) func() bool {
		return func() bool {
			m := reloadOK.FindStringSubmatch(metrics())
			return m != nil && m[1] == want
		}
	}
	if !reloaded("1")() {
		t.Fatalf("no otpprobe_config_last_reload_successful 1 at start:\n%s", metrics())
	}
	inbox := regexp.MustCompile(`otpprobe_attempts_total\{agent="lab",outcome="inbox",[^}]*\} [1-9]`)
	if inbox.MatchString(metrics()) {
		t.Fatal("an hourly probe ran at start")
	}

	// The schedule changes to every second: rounds start without a restart.
	if _, err := w.Endpoints().WriteConfig(lab.ConfigOptions{Dir: dir, Schedule: "@every 1s", Listen: "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "attempts on the new schedule", func() bool { return inbox.MatchString(metrics()) })
	if !strings.Contains(logs.String(), `"msg":"config reloaded"`) {
		t.Errorf("no 'config reloaded' log:\n%s", logs.String())
	}

	// A broken config: refused by field, the running one stays.
	good, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	broken := bytes.Replace(good, []byte("@every 1s"), []byte("@every soon"), 1)
	if err := os.WriteFile(cfgPath, broken, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the failed reload to show", reloaded("0"))
	if out := logs.String(); !strings.Contains(out, "config reload failed; still running the previous config") ||
		!strings.Contains(out, `probes[0] (otp).schedule: invalid cron spec \"@every soon\"`) {
		t.Errorf("the failed reload's log does not name the field:\n%s", out)
	}
	before := len(inbox.FindAllString(metrics(), -1))
	if code, body := d.Get("/healthz"); code != http.StatusOK {
		t.Fatalf("the daemon stopped serving after a failed reload: %d %s", code, body)
	}
	if before == 0 {
		t.Error("the running config's metrics are gone")
	}
	if code := d.Stop(); code != exitOK {
		t.Errorf("exit %d", code)
	}
}
