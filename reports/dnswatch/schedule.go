package dnswatch

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/otpprobe/otpprobe/targets"
)

// Run checks every domain once at start and then on the dns_checks
// schedule until ctx ends; a run still going when the next is due is
// skipped. It returns nil unless the schedule is invalid.
func (w *Watcher) Run(ctx context.Context) error {
	if w.cfg.Disabled {
		return nil
	}
	logger := cronLogger{w.log}
	c := cron.New(cron.WithParser(targets.CronParser), cron.WithLocation(time.UTC), cron.WithLogger(logger),
		cron.WithChain(cron.Recover(logger), cron.SkipIfStillRunning(logger)))
	if _, err := c.AddFunc(w.cfg.ScheduleSpec(), func() { w.CheckAll(ctx) }); err != nil {
		return fmt.Errorf("dns_checks.schedule: %w", err)
	}
	w.CheckAll(ctx)
	c.Start()
	<-ctx.Done()
	<-c.Stop().Done()
	return nil
}

// cronLogger adapts slog to cron's logger interface.
type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) { c.l.Debug("dns checks cron: "+msg, kv...) }
func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error("dns checks cron: "+msg, append(kv, "err", err)...)
}
