package probe_test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/targets"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func rssMB() float64 {
	data, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkEndToEnd runs whole probe rounds (2 senders × 3 mailboxes) against
// the lab, 8 rounds at a time, and reports attempts/s, CPU-ms and
// allocations per attempt (the lab's work included: it shares the process),
// and the detection lag — SeenAt minus the lab's own APPEND time — at p50
// and p99 (goal ≤ 100 ms at p99 with IDLE).
func BenchmarkEndToEnd(b *testing.B) {
	w, cfg := labConfig(b, lab.Options{}, lab.ConfigOptions{Deadline: 2 * time.Minute})
	benchEndToEnd(b, w, cfg, 8)
}

// BenchmarkEndToEndSerial sends one round at a time: the detection lag
// without the prober competing with itself for the two cores.
func BenchmarkEndToEndSerial(b *testing.B) {
	w, cfg := labConfig(b, lab.Options{}, lab.ConfigOptions{Deadline: 2 * time.Minute})
	benchEndToEnd(b, w, cfg, 1)
}

func benchEndToEnd(b *testing.B, w *lab.World, cfg *targets.Config, concurrency int) {
	st := openStore(b, filepath.Join(b.TempDir(), "otpprobe.db"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var c collector
	e := startEngine(b, ctx, cfg, st, &c)
	roundAndWait(b, ctx, e, "otp") // connect the watchers first

	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0, start := cpuTime(), time.Now()
	b.ResetTimer()
	var wg sync.WaitGroup
	sem := make(chan struct{}, concurrency)
	var mu sync.Mutex
	var attempts []*attempt.Attempt
	for range b.N {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			as := roundAndWait(b, ctx, e, "otp")
			mu.Lock()
			attempts = append(attempts, as...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	b.StopTimer()
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	runtime.ReadMemStats(&ms1)
	n := float64(len(attempts))
	b.ReportMetric(n/elapsed.Seconds(), "attempts/s")
	b.ReportMetric(float64(cpu.Milliseconds())/n, "CPU-ms/attempt")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/n, "allocs/attempt")

	if w == nil { // the lab runs in another process
		return
	}
	appended := map[string]time.Time{}
	for _, p := range []string{lab.ProviderGmail, lab.ProviderYahoo, lab.ProviderOutlook} {
		for _, d := range w.Store(p).Deliveries() {
			appended[d.ProbeID] = d.At
		}
	}
	var lags []time.Duration
	for _, a := range attempts {
		if at, ok := appended[a.Token]; ok && a.Outcome == attempt.OutcomeInbox {
			lags = append(lags, a.SeenAt.Sub(at))
		} else if a.Outcome != attempt.OutcomeInbox {
			b.Errorf("%s→%s: %s", a.Sender, a.Mailbox, a.Outcome)
		}
	}
	if len(lags) > 0 {
		slices.Sort(lags)
		b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "lag-p50-ms")
		b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds())/1000, "lag-p99-ms")
	}
}

// BenchmarkInFlight measures the resident memory of the whole process (lab
// included) with about 1,000 attempts in flight: yahoo holds every canary,
// so the attempts stay pending while their watchers wait.
func BenchmarkInFlight(b *testing.B) {
	for range b.N {
		w, cfg := labConfig(b, lab.Options{ProviderDelay: time.Hour}, lab.ConfigOptions{Deadline: time.Hour})
		cfg.Probes[0].Mailboxes = []string{lab.ProviderYahoo}
		if err := w.Apply("provider-delay"); err != nil {
			b.Fatal(err)
		}
		st := openStore(b, filepath.Join(b.TempDir(), "otpprobe.db"))
		ctx, cancel := context.WithCancel(context.Background())
		var c collector
		e := startEngine(b, ctx, cfg, st, &c)
		base := rssMB()
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for range 500 { // 500 rounds × 2 senders = 1,000 attempts
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				if _, err := e.Round(ctx, "otp"); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		pending, _ := st.Pending(ctx, "")
		runtime.GC()
		b.ReportMetric(float64(len(pending)), "in-flight")
		b.ReportMetric(rssMB(), "RSS-MB")
		b.ReportMetric(rssMB()-base, "RSS-MB-added")
		cancel()
	}
}

const benchLabEnv = "OTPPROBE_BENCH_LAB_ENDPOINTS"

// benchLabChild runs a lab world for a benchmark in another process, so
// that the benchmark's CPU figures are the prober's alone. It writes the
// endpoints file and runs until its standard input closes.
func benchLabChild() int {
	w, err := lab.Start(context.Background(), lab.Options{})
	if err != nil {
		return 1
	}
	defer w.Close()
	if err := w.Endpoints().WriteFile(os.Getenv(benchLabEnv)); err != nil {
		return 1
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// BenchmarkProberCPU is BenchmarkEndToEnd with the lab in a child process:
// CPU-ms and allocations per attempt are the prober's own (goal ≤ 5
// CPU-ms/attempt).
func BenchmarkProberCPU(b *testing.B) {
	dir := b.TempDir()
	epPath := filepath.Join(dir, "endpoints.json")
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), benchLabEnv+"="+epPath)
	stdin, err := child.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := child.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); child.Wait() }()
	var ep *lab.Endpoints
	for i := 0; i < 300 && ep == nil; i++ {
		if ep, err = lab.LoadEndpoints(epPath); err != nil {
			ep = nil
			time.Sleep(100 * time.Millisecond)
		}
	}
	if ep == nil {
		b.Fatal("the lab child never wrote its endpoints")
	}
	cfgPath, err := ep.WriteConfig(lab.ConfigOptions{Dir: dir, Deadline: 2 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := targets.Load(cfgPath)
	if err != nil {
		b.Fatal(err)
	}
	benchEndToEnd(b, nil, cfg, 8)
}
