package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/targets"
)

// benchWatcher starts a lab provider and an IDLE watcher on its INBOX that
// reports, for each canary, the instant deliver() ran.
func benchWatcher(b *testing.B, n int) (*world, *Watcher, chan time.Time) {
	w := newWorldTB(b)
	pending := map[string]bool{}
	for i := range n {
		pending[fmt.Sprintf("otp-bench%06d", i)] = true
	}
	got := make(chan time.Time, n)
	wt := NewWatcher(WatchConfig{Mailbox: w.mailbox(), Creds: staticCreds(testUser, testPassword), PollEvery: time.Second}, Canaries(
		func(tok string) bool { return pending[tok] },
		func(Arrival) { got <- time.Now() }))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { wt.Run(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done })
	waitIdle(wt)
	return w, wt, got
}

// waitIdle waits until the watcher is in IDLE, plus a moment for the lab
// server to register the session (see safetyNet).
func waitIdle(wt *Watcher) {
	for wt.State().Status != WatchIdle {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(2 * time.Millisecond)
}

// BenchmarkWatcherIdleLatency measures APPEND (the lab's delivery instant,
// which is also INTERNALDATE) to deliver(), one canary at a time into an
// idle watcher, with IDLE, STARTTLS and cleanup by MOVE. The 1 s safety
// net bounds the rare EXISTS the lab server holds back. Run with
// -benchtime=200x.
func BenchmarkWatcherIdleLatency(b *testing.B) {
	w, wt, got := benchWatcher(b, b.N)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		waitIdle(wt)
		b.StartTimer()
		at, err := w.store.Deliver(testUser, "INBOX", canaryMsg(fmt.Sprintf("otp-bench%06d", i)))
		if err != nil {
			b.Fatal(err)
		}
		select {
		case seen := <-got:
			lat = append(lat, seen.Sub(at))
		case <-time.After(waitLong):
			b.Fatalf("canary %d not delivered", i)
		}
	}
	b.StopTimer()
	reportLatency(b, lat)
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(1), "max-ms")
	slow := 0
	for _, l := range lat {
		if l > 100*time.Millisecond {
			slow++
		}
	}
	b.ReportMetric(float64(slow), "over-100ms")
}

// BenchmarkWatcherThroughput delivers b.N canaries in one burst and
// measures arrivals per second until the last is delivered.
func BenchmarkWatcherThroughput(b *testing.B) {
	w, _, got := benchWatcher(b, b.N)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if _, err := w.store.Deliver(testUser, "INBOX", canaryMsg(fmt.Sprintf("otp-bench%06d", i))); err != nil {
			b.Fatal(err)
		}
	}
	for i := range b.N {
		select {
		case <-got:
		case <-time.After(waitLong):
			b.Fatalf("%d of %d delivered", i, b.N)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "arrivals/s")
}

// BenchmarkWatcherInteropIdleLatency is BenchmarkWatcherIdleLatency against
// Dovecot (scripts/testservers.sh): from the start of a second client's
// APPEND to deliver().
func BenchmarkWatcherInteropIdleLatency(b *testing.B) {
	path := os.Getenv("OTPPROBE_INTEROP_ENDPOINTS")
	if path == "" {
		b.Skip("OTPPROBE_INTEROP_ENDPOINTS is not set")
	}
	ep, err := lab.LoadEndpoints(path)
	if err != nil {
		b.Fatal(err)
	}
	mbEP := ep.Mailboxes[0]
	mb := targets.Mailbox{
		Name:     mbEP.Name,
		Endpoint: targets.Endpoint{Host: mbEP.Host, Port: mbEP.Port, TLS: mbEP.TLS, CAFile: ep.CAFile},
		Auth:     targets.Auth{Mechanism: targets.AuthPlain, Username: mbEP.Username},
	}
	run := fmt.Sprintf("otp-b%d-", time.Now().UnixNano())
	got := make(chan time.Time, b.N)
	wt := NewWatcher(WatchConfig{Mailbox: mb, Creds: staticCreds(mbEP.Username, mbEP.Password), PollEvery: time.Second}, Canaries(
		func(tok string) bool { return strings.HasPrefix(tok, run) },
		func(Arrival) { got <- time.Now() }))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { wt.Run(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done })
	waitIdle(wt)

	pem, err := os.ReadFile(ep.CAFile)
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c, err := imapclient.DialStartTLS(net.JoinHostPort(mbEP.Host, strconv.Itoa(mbEP.Port)),
		&imapclient.Options{TLSConfig: &tls.Config{RootCAs: pool, ServerName: mbEP.Host}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(mbEP.Username, mbEP.Password).Wait(); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		waitIdle(wt)
		b.StartTimer()
		msg := canaryMsg(fmt.Sprintf("%s%06d", run, i))
		start := time.Now()
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		if _, err := cmd.Write(msg); err != nil {
			b.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			b.Fatal(err)
		}
		if _, err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
		select {
		case seen := <-got:
			lat = append(lat, seen.Sub(start))
		case <-time.After(waitLong):
			b.Fatalf("canary %d not delivered", i)
		}
	}
	b.StopTimer()
	reportLatency(b, lat)
}
