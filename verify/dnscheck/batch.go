package dnscheck

import (
	"context"
	"sync"

	"github.com/otpprobe/otpprobe/verify/resolver"
)

// CheckDomains checks many domains with at most workers at a time (at
// least 1) and hands each report to fn as it completes. fn is never called
// concurrently, so it may write to a table or a store without locking;
// reports are not kept, so memory stays flat however many domains there are.
func CheckDomains(ctx context.Context, r *resolver.Resolver, domains []Domain, workers int, fn func(Report)) {
	workers = max(1, min(workers, len(domains)))
	next := make(chan Domain)
	var (
		wg   sync.WaitGroup
		emit sync.Mutex
	)
	for range workers {
		wg.Go(func() {
			for d := range next {
				rep := CheckDomain(ctx, r, d)
				emit.Lock()
				fn(rep)
				emit.Unlock()
			}
		})
	}
	for _, d := range domains {
		if ctx.Err() != nil {
			break
		}
		next <- d
	}
	close(next)
	wg.Wait()
}
