package probe

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
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
	wt := NewWatcher(WatchConfig{Mailbox: w.mailbox(), Creds: staticCreds(testUser, testPassword), PollEvery: time.Second},
		func(tok string) bool { return pending[tok] }, // read-only once built
		func(Arrival) { got <- time.Now() })
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
