package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
)

// queryBenchAttempts is the history the read-side benchmarks query:
// OTPPROBE_BENCH_ATTEMPTS (default 1,000,000), about 30 days of a probe
// with 3 senders × 4 mailboxes every 30 s.
func queryBenchAttempts() int {
	if n, err := strconv.Atoi(os.Getenv("OTPPROBE_BENCH_ATTEMPTS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

var (
	benchOnce  sync.Once
	benchStore *SQLite
	benchNow   time.Time
	benchErr   error
)

// benchHistory fills one store for all the query benchmarks of a run (a
// million rows take a while to write) and returns it with the time of
// its newest attempt.
func benchHistory(b *testing.B) (*SQLite, time.Time) {
	benchOnce.Do(func() {
		ctx := context.Background()
		dir, err := os.MkdirTemp("", "otpprobe-bench-")
		if err != nil {
			benchErr = err
			return
		}
		s, err := OpenSQLite(ctx, filepath.Join(dir, "bench.db"))
		if err != nil {
			benchErr = err
			return
		}
		n := queryBenchAttempts()
		// 12 attempts per 30 s round: the newest at benchNow.
		start := time.Now().UTC().Add(-time.Duration(n/12) * 30 * time.Second).Truncate(time.Second)
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			benchErr = err
			return
		}
		ins := tx.StmtContext(ctx, s.insert)
		for i := range n {
			a := newAttempt(i)
			a.ID = fmt.Sprintf("%012x-bench-%08x", i/12, i)
			a.RoundID = fmt.Sprintf("round-%d", i/12)
			a.CreatedAt = start.Add(time.Duration(i/12)*30*time.Second + time.Duration(i%12)*time.Millisecond)
			finish(a, i)
			if i%97 == 0 {
				a.Outcome = attempt.OutcomeLost
			}
			vals, err := values(a, a.CreatedAt)
			if err != nil {
				benchErr = err
				return
			}
			if _, err := ins.ExecContext(ctx, vals...); err != nil {
				benchErr = err
				return
			}
			benchNow = a.CreatedAt
		}
		if benchErr = tx.Commit(); benchErr != nil {
			return
		}
		_, benchErr = s.w.ExecContext(ctx, "ANALYZE")
		benchStore = s
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchStore, benchNow
}

// BenchmarkDashboardQueries runs, on a history of a million attempts,
// each query the dashboard and the attempts API make; every one must
// stay well under 50 ms (the ms/op figure).
func BenchmarkDashboardQueries(b *testing.B) {
	s, now := benchHistory(b)
	ctx := context.Background()
	deep, err := s.Attempts(ctx, AttemptQuery{Sender: "m365", Limit: MaxPageLimit})
	if err != nil {
		b.Fatal(err)
	}
	for range 20 { // a cursor 10,000 attempts back
		if deep, err = s.Attempts(ctx, AttemptQuery{Sender: "m365", Limit: MaxPageLimit, Cursor: deep.Next}); err != nil {
			b.Fatal(err)
		}
	}
	mid := deep.Attempts[0].ID
	for _, bc := range []struct {
		name string
		run  func() error
	}{
		{"matrix_last24h_500", func() error {
			_, err := s.Attempts(ctx, AttemptQuery{Since: now.Add(-24 * time.Hour), Limit: MaxPageLimit})
			return err
		}},
		{"latency_last1h", func() error {
			_, err := s.LatencySamples(ctx, now.Add(-time.Hour), 20000)
			return err
		}},
		{"api_newest_50", func() error {
			_, err := s.Attempts(ctx, AttemptQuery{})
			return err
		}},
		{"api_sender_outcome_50", func() error {
			_, err := s.Attempts(ctx, AttemptQuery{Sender: "m365", Outcome: attempt.OutcomeLost})
			return err
		}},
		{"api_mailbox_since7d_50", func() error {
			_, err := s.Attempts(ctx, AttemptQuery{Mailbox: "yahoo-1", Since: now.Add(-7 * 24 * time.Hour)})
			return err
		}},
		{"api_provider_50", func() error {
			_, err := s.Attempts(ctx, AttemptQuery{Provider: "outlook"})
			return err
		}},
		{"api_page_10000_deep", func() error {
			_, err := s.Attempts(ctx, AttemptQuery{Sender: "m365", Cursor: deep.Next})
			return err
		}},
		{"api_get", func() error {
			_, err := s.Get(ctx, mid)
			return err
		}},
		{"incidents_7d", func() error {
			_, err := s.Incidents(ctx, IncidentQuery{Since: now.Add(-7 * 24 * time.Hour), Limit: 10})
			return err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if err := bc.run(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
		})
	}
}
