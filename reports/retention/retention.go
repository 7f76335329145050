// Package retention prunes the store on a schedule so that nothing fills
// up: old attempts, DNS snapshots and changes, route transitions and
// resolved incidents go in small batches (store.Prune), counted in
// otpprobe_store_pruned_rows_total, while probing goes on.
package retention

import (
	"context"
	"log/slog"
	"time"

	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
)

// Pruner removes what the retention no longer keeps (store.SQLite).
type Pruner interface {
	Prune(ctx context.Context, r store.Retention, now time.Time, pruned func(table string, n int64)) error
}

// Every is how often the store is pruned; the first run is a minute after
// start, out of the way of the start-up.
const (
	Every = time.Hour
	first = time.Minute
)

// Of returns the config's retention in the store's terms.
func Of(r targets.Retention) store.Retention {
	return store.Retention{Attempts: r.KeepAttempts(), DNS: r.KeepDNS(), History: r.KeepHistory()}
}

// Run prunes st by r every Every until ctx ends.
func Run(ctx context.Context, st Pruner, r store.Retention, pruned func(table string, n int64), log *slog.Logger) {
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		total := map[string]int64{}
		err := st.Prune(ctx, r, time.Now(), func(table string, n int64) {
			total[table] += n
			if pruned != nil {
				pruned(table, n)
			}
		})
		if err != nil && ctx.Err() == nil {
			log.Error("retention: prune", "err", err)
		} else if len(total) > 0 {
			log.Info("retention: pruned", "rows", total)
		}
		t.Reset(Every)
	}
}
