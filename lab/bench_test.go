package lab_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/lab"
)

// BenchmarkHealthyPath measures the whole healthy path: submission with
// STARTTLS + AUTH → DKIM signing → MX lookup and relay from the source
// address → SPF, DKIM and DMARC at the receiver → IMAP APPEND. It reports
// messages/s (goal: ≥ 200 on 2 cores, so the lab never limits a load test).
func BenchmarkHealthyPath(b *testing.B) {
	w := startWorld(b, lab.Options{})
	s := senderEndpoint(b, w, lab.SenderM365)
	store := w.Store(lab.ProviderGmail)
	base := store.Count(lab.SeedLocalPart, "INBOX")
	const workers = 8
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := submit(w, s, "seed@gmail.test", fmt.Sprintf("bench-%d-%d", start.UnixNano(), i)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if !waitFor(time.Minute, func() bool { return store.Count(lab.SeedLocalPart, "INBOX")-base >= b.N }) {
		b.Fatalf("only %d of %d delivered", store.Count(lab.SeedLocalPart, "INBOX")-base, b.N)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
