package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// testDaemon is the daemon `otpprobe run` starts (runDaemon), in process,
// logging JSON lines into Logs, for tests that talk to it over HTTP.
type testDaemon struct {
	Addr string // the bound HTTP address (the config may say 127.0.0.1:0)
	Logs *lockedWriter

	cancel  context.CancelFunc
	done    chan int
	code    int
	stopped bool
}

// startDaemon runs the daemon on cfgPath with o until the test ends (or
// Stop), and returns once its first generation is up ("otpprobe
// running"); it fails the test when the daemon exits first.
func startDaemon(t *testing.T, ctx context.Context, cfgPath string, o daemonOptions) *testDaemon {
	t.Helper()
	cfg, code := loadConfig(cfgPath, "run", io.Discard)
	if cfg == nil {
		t.Fatalf("config %s: exit %d", cfgPath, code)
	}
	ctx, cancel := context.WithCancel(ctx)
	d := &testDaemon{Logs: &lockedWriter{}, cancel: cancel, done: make(chan int, 1)}
	bound := make(chan string, 1)
	o.listening = func(addr string) { bound <- addr }
	go func() { d.done <- runDaemon(ctx, cfgPath, cfg, jsonLogger(d.Logs, &logLevel{}), d.Logs, o) }()
	t.Cleanup(func() { d.Stop() })
	select {
	case d.Addr = <-bound:
	case code := <-d.done:
		d.stopped, d.code = true, code
		t.Fatalf("the daemon exited %d before listening:\n%s", code, d.Logs)
	}
	eventually(t, "the daemon to run", func() bool {
		if d.exited() {
			t.Fatalf("the daemon exited %d:\n%s", d.code, d.Logs)
		}
		return d.logged("otpprobe running")
	})
	return d
}

// Stop ends the daemon and returns its exit code (once; later calls
// return the same code).
func (d *testDaemon) Stop() int {
	if !d.stopped {
		d.cancel()
		d.code, d.stopped = <-d.done, true
	}
	return d.code
}

func (d *testDaemon) exited() bool {
	select {
	case code := <-d.done:
		d.code, d.stopped = code, true
		return true
	default:
		return d.stopped
	}
}

// logged reports whether a JSON log line has msg.
func (d *testDaemon) logged(msg string) bool {
	sc := bufio.NewScanner(strings.NewReader(d.Logs.String()))
	for sc.Scan() {
		var l struct{ Msg string }
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == msg {
			return true
		}
	}
	return false
}

// Get GETs path from the daemon: its status and body, or 0 and the error.
func (d *testDaemon) Get(path string) (int, string) {
	resp, err := http.Get("http://" + d.Addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Metrics is the daemon's /metrics page ("" when it does not answer).
func (d *testDaemon) Metrics() string {
	code, body := d.Get("/metrics")
	if code != http.StatusOK {
		return ""
	}
	return body
}

// lockedWriter collects a daemon's log lines while tests read them.
type lockedWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// eventually polls cond until it holds or a minute passed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitFor(t, time.Minute, what, cond)
}

// waitFor polls cond until it holds or limit passed (generous: the
// machine may be loaded; nothing here measures speed by failing).
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	if !pollUntil(limit, cond) {
		t.Fatalf("timed out after %v waiting for %s", limit, what)
	}
}

// pollUntil polls cond every 50 ms until it holds (true) or limit passed.
func pollUntil(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}
