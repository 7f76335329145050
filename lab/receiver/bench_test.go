package receiver_test

import (
	"testing"
	"time"
)

// BenchmarkReceive measures one receiver end to end: SMTP over STARTTLS →
// SPF + DKIM (RSA-2048) + DMARC against the lab DNS → header rendering →
// IMAP store APPEND, sequentially on one connection and in parallel.
func BenchmarkReceive(b *testing.B) {
	w := newWorld(b)
	msg := message(b, bankDomain, "seed", activeSelector, "bench")
	b.Run("serial", func(b *testing.B) {
		c, err := w.dialSMTP("gmail", m365IP)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		b.ReportAllocs()
		start := time.Now()
		n := 0
		for b.Loop() {
			if err := transact(c, otpFrom, "seed@gmail.test", msg); err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "msgs/s")
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			c, err := w.dialSMTP("outlook", m365IP)
			if err != nil {
				b.Error(err)
				return
			}
			defer c.Close()
			for pb.Next() {
				if err := transact(c, otpFrom, "seed@outlook.test", msg); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	})
}
