package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath finds Debian's chromium (scripts/testservers.sh installs
// it); under CI=true a missing browser fails the test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("OTPPROBE_CHROMIUM"); p != "" {
		return p
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed (scripts/testservers.sh install puts it there)")
		}
		t.Skip("chromium is not installed")
	}
	return p
}

// labLines runs `otpprobe lab` in process and returns its stdout lines
// as they come, and its dashboard and control URLs from the first line.
func labLines(t *testing.T, ctx context.Context, args ...string) (lines <-chan string, dashboardURL, controlURL string) {
	t.Helper()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- dispatch(ctx, append([]string{"lab", "--listen", "127.0.0.1:0", "--dir", t.TempDir()}, args...), pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() { <-done })
	out := make(chan string, 1000)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			select {
			case out <- sc.Text():
			default: // nobody reads any more: keep the lab from blocking
			}
		}
	}()
	first, ok := <-out
	if !ok {
		t.Fatal("otpprobe lab printed nothing")
	}
	m := regexp.MustCompile(`^otpprobe lab: dashboard (http://\S+/) .*control (http://[^;]+);`).FindStringSubmatch(first)
	if m == nil {
		t.Fatalf("first line %q does not name the dashboard and the control API", first)
	}
	return out, m[1], m[2]
}

// waitRounds reads lines until n rounds of sender have finished.
func waitRounds(t *testing.T, lines <-chan string, sender string, n int) {
	t.Helper()
	for n > 0 {
		l, ok := <-lines
		if !ok {
			t.Fatal("otpprobe lab stopped")
		}
		if strings.Contains(l, " round otp/"+sender+":") {
			n--
		}
	}
}

// TestDashboardInBrowser loads the lab's dashboard in headless Chromium,
// follows an attempt link, then breaks m365 through the lab's control
// API and watches the matrix turn without a reload. Screenshots go to the
// test's temp dir, and to $OTPPROBE_SCREENSHOTS when set (make screenshots).
func TestDashboardInBrowser(t *testing.T) {
	exe := chromiumPath(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lines, url, control := labLines(t, ctx, "--schedule", "@every 5s")
	waitRounds(t, lines, "m365", 1) // the first round runs at once

	actx, acancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.WindowSize(1280, 900))...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	bctx, tcancel := context.WithTimeout(bctx, 2*time.Minute)
	defer tcancel()

	shots := []string{t.TempDir()}
	if d := os.Getenv("OTPPROBE_SCREENSHOTS"); d != "" {
		shots = append(shots, d)
	}
	save := func(name string, png []byte) {
		for _, d := range shots {
			if err := os.WriteFile(filepath.Join(d, name), png, 0o644); err != nil {
				t.Error(err)
			}
		}
	}

	if err := chromedp.Do(bctx,
		chromedp.Navigate(url),
		chromedp.WaitVisible(`#routes .route`),
		chromedp.WaitVisible(`tr[data-sender="m365"] a.dot`),
	); err != nil {
		t.Fatal(err)
	}
	routes := run1(t, bctx, chromedp.Text(`#routes`))
	link := run1(t, bctx, chromedp.AttributeValue(`tr[data-sender="m365"] a.dot`, "href"))
	href := link.Value
	save("dashboard.png", run1(t, bctx, chromedp.FullScreenshot(100)))
	if !strings.Contains(routes, "otp") || !strings.Contains(routes, "m365") || !strings.HasPrefix(href, "/attempts/") {
		t.Fatalf("dashboard: routes %q, first m365 link %q", routes, href)
	}

	if err := chromedp.Do(bctx,
		chromedp.Click(`tr[data-sender="m365"] a.dot`),
		chromedp.WaitVisible(`#attempt`),
	); err != nil {
		t.Fatal(err)
	}
	attemptText := run1(t, bctx, chromedp.Text(`main`))
	save("attempt.png", run1(t, bctx, chromedp.FullScreenshot(100)))
	for _, want := range []string{strings.TrimPrefix(href, "/attempts/"), "timings", "verdicts", "SMTP transcript", "evidence bundle"} {
		if !strings.Contains(attemptText, want) {
			t.Errorf("attempt page lacks %q", want)
		}
	}

	// Break m365 and watch the open page: the newest m365 outcome turns
	// to send_failed within two rounds, with no reload (the marker set
	// in the page survives).
	if err := chromedp.Do(bctx,
		chromedp.Navigate(url),
		chromedp.WaitVisible(`tr[data-sender="m365"] a.dot`),
	); err != nil {
		t.Fatal(err)
	}
	run1(t, bctx, chromedp.Evaluate[int](`window.otpprobeMarker = 42`))
	applied := time.Now().UTC().Truncate(time.Second)
	resp, err := http.Post(control+"/scenario", "application/json", strings.NewReader(`{"name":"m365-outage"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("apply m365-outage: %s", resp.Status)
	}
	turned := make(chan error, 1)
	go func() {
		_, err := chromedp.Run(bctx, chromedp.Poll[bool](
			`(function(){var d=document.querySelector('tr[data-sender="m365"] a.dot');return !!d && d.classList.contains('o-send_failed') && window.otpprobeMarker === 42})()`,
			chromedp.WithPollingTimeout(90*time.Second)))
		turned <- err
	}()
	rounds := 0
	for done := false; !done; {
		select {
		case err := <-turned:
			if err != nil {
				t.Fatalf("the matrix did not turn to send_failed without a reload: %v", err)
			}
			done = true
		case l := <-lines:
			// Only rounds started after the change count (lines of
			// earlier rounds may still be queued).
			if i := strings.Index(l, " round otp/m365:"); i > 0 {
				if start, err := time.Parse("15:04:05", l[:i]); err == nil && secondOfDay(start) >= secondOfDay(applied) {
					rounds++
				}
			}
		}
	}
	// Two rounds after the change, and one more for the page's refresh.
	if rounds > 3 {
		t.Errorf("the matrix turned only after %d m365 rounds", rounds)
	}
	save("dashboard-m365-outage.png", run1(t, bctx, chromedp.FullScreenshot(100)))
}

// secondOfDay compares the lab's round times (HH:MM:SS, UTC).
func secondOfDay(t time.Time) int { return t.Hour()*3600 + t.Minute()*60 + t.Second() }

// run1 runs one browser action and returns its value.
func run1[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
