package probe

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/otpprobe/otpprobe/targets"
)

// Scheduler runs every probe of the engine on its cron schedule.
type Scheduler struct {
	e       *Engine
	cron    *cron.Cron
	jitter  time.Duration
	skipped func(probe string) // counts runs skipped because the last one still ran
	names   map[cron.EntryID]string
	ctx     context.Context
}

// NewScheduler prepares the schedule; Start runs it. jitter is the largest
// random delay added to each run so that many agents do not fire in step;
// a run is never delayed by more than a tenth of the time to the probe's
// next run, so it does not run into it.
func NewScheduler(e *Engine, jitter time.Duration, skipped func(probe string)) (*Scheduler, error) {
	s := &Scheduler{e: e, jitter: jitter, skipped: skipped, names: map[cron.EntryID]string{}}
	logger := cronLogger{e.log}
	// cron's default chain is empty: Recover and SkipIfStillRunning are ours.
	s.cron = cron.New(cron.WithParser(targets.CronParser), cron.WithLocation(time.UTC), cron.WithLogger(logger),
		cron.WithChain(cron.Recover(logger)))
	for _, p := range e.cfg.Probes {
		sched, err := p.CronSchedule()
		if err != nil {
			return nil, fmt.Errorf("probes (%s).schedule: %w", p.Name, err)
		}
		id, err := s.cron.AddJob(p.Schedule, s.job(p.Name, sched))
		if err != nil {
			return nil, fmt.Errorf("probes (%s).schedule: %w", p.Name, err)
		}
		s.names[id] = p.Name
	}
	return s, nil
}

// job is one probe's run, wrapped in cron's SkipIfStillRunning with a
// logger that counts the skips for this probe.
func (s *Scheduler) job(probe string, sched cron.Schedule) cron.Job {
	run := cron.FuncJob(func() {
		ctx := s.ctx
		now := time.Now()
		if j := min(s.jitter, sched.Next(now).Sub(now)/10); j > 0 && !sleep(ctx, rand.N(j)) {
			return
		}
		if _, err := s.e.Round(ctx, probe); err != nil && ctx.Err() == nil {
			s.e.log.Error("probe round failed", "probe", probe, "err", err)
		}
	})
	skips := skipCounter{cronLogger{s.e.log.With("probe", probe)}, func() {
		if s.skipped != nil {
			s.skipped(probe)
		}
	}}
	return cron.NewChain(cron.SkipIfStillRunning(skips)).Then(run)
}

// skipCounter sees SkipIfStillRunning's "skip" log line and counts it.
type skipCounter struct {
	cronLogger
	count func()
}

func (s skipCounter) Info(msg string, kv ...any) {
	if msg == "skip" {
		s.l.Warn("probe run skipped: the previous run is still sending")
		s.count()
		return
	}
	s.cronLogger.Info(msg, kv...)
}

// Start runs the schedule until ctx is done; it returns once running
// rounds have finished.
func (s *Scheduler) Start(ctx context.Context) {
	s.ctx = ctx
	s.cron.Start()
	<-ctx.Done()
	<-s.cron.Stop().Done()
}

// cronLogger adapts slog to cron's logger interface.
type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) { c.l.Debug("cron: "+msg, kv...) }
func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error("cron: "+msg, append(kv, "err", err)...)
}
