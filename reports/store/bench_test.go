package store

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/otpprobe/otpprobe/attempt"
)

// BenchmarkCreateUpdate is one attempt's life in the store: stored pending,
// then replaced with its outcome. Reports attempts/s.
func BenchmarkCreateUpdate(b *testing.B) {
	ctx := context.Background()
	s, _ := openTest(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		a := newAttempt(i)
		if err := s.Create(ctx, a); err != nil {
			b.Fatal(err)
		}
		finish(a, i)
		if err := s.Update(ctx, a); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "attempts/s")
}

// BenchmarkList10k reads 10,000 finished attempts: all of them, and one
// sender's third through its index.
func BenchmarkList10k(b *testing.B) {
	ctx := context.Background()
	s, _ := openTest(b)
	const n = 10_000
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		a := newAttempt(i)
		finish(a, i)
		vals, err := values(a, a.CreatedAt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.StmtContext(ctx, s.insert).ExecContext(ctx, vals...); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		f    attempt.Filter
		want int
	}{
		{"all", attempt.Filter{}, n},
		{"sender", attempt.Filter{Sender: "m365"}, (n + 2) / 3},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				got, err := s.List(ctx, bc.f)
				if err != nil {
					b.Fatal(err)
				}
				if len(got) != bc.want {
					b.Fatalf("listed %d, want %d", len(got), bc.want)
				}
			}
			b.ReportMetric(float64(b.N*bc.want)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkCreateUpdateParallel is BenchmarkCreateUpdate from many
// goroutines, as probes finishing together write: they queue on the one
// writer connection.
func BenchmarkCreateUpdateParallel(b *testing.B) {
	ctx := context.Background()
	s, _ := openTest(b)
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1))
			a := newAttempt(i)
			if err := s.Create(ctx, a); err != nil {
				b.Error(err)
				return
			}
			finish(a, i)
			if err := s.Update(ctx, a); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "attempts/s")
}
