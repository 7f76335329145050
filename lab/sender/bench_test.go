package sender_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/lab/sender"
)

// BenchmarkSubmitSignRelay measures the healthy path: submission over
// STARTTLS+AUTH (sessions reused), DKIM signing (RSA-2048), and relay over
// verified STARTTLS to a trivial receiver. The clock stops when the
// receiver has every message.
func BenchmarkSubmitSignRelay(b *testing.B) {
	for _, clients := range []int{1, 4} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			w := newWorld(b)
			gmail := w.mx("gmail.test", "gmail-smtp-in.l.google.test", lab.GmailIP)
			s := w.sender(func(c *sender.Config) { c.Logger = nil })
			cs := make([]*smtp.Client, clients)
			for i := range cs {
				cs[i] = w.submitClient(s)
			}
			msg := canary("bench", "seed@gmail.test")
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			errs := make(chan error, clients)
			for i, c := range cs {
				n := b.N / clients
				if i < b.N%clients {
					n++
				}
				wg.Go(func() {
					for range n {
						if _, err := send(c, lab.OTPFrom, []string{"seed@gmail.test"}, msg); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			gmail.wait(b, b.N)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
