package probe

import (
	"context"
	"errors"
	"time"
)

// idle runs IDLE until new mail, a Poke, or the polling safety net. woke
// reports an EXISTS.
func (s *watchSession) idle(ctx context.Context, exists <-chan struct{}) (woke bool, err error) {
	w := s.w
	// Ask for pending updates first: go-imap's imapserver (the lab) only
	// reports mail appended before IDLE began once something else
	// happens, and a poll round is exactly when that window is open.
	stop := s.guard()
	err = s.c.Noop().Wait()
	stop()
	if err != nil {
		return false, w.fail(StageIdle, ctxErr(ctx, err))
	}
	select {
	case <-exists:
		return true, nil
	default:
	}
	cmd, err := s.c.Idle()
	if err != nil {
		return false, w.fail(StageIdle, ctxErr(ctx, err))
	}
	w.setStatus(WatchIdle)
	woke, err = s.await(ctx, exists, min(w.pollEvery(true), maxIdle), StageIdle)
	if err != nil {
		return false, err
	}
	defer s.guard()()
	if err := cmd.Close(); err != nil {
		return false, w.fail(StageIdle, ctxErr(ctx, err))
	}
	if err := cmd.Wait(); err != nil {
		return false, w.fail(StageIdle, ctxErr(ctx, err))
	}
	return woke, nil
}

// wait is the idle time of a connection without IDLE.
func (s *watchSession) wait(ctx context.Context, exists <-chan struct{}) (woke bool, err error) {
	return s.await(ctx, exists, s.w.pollEvery(false), StageFetch)
}

// await blocks until new mail (woke), the polling interval, or a Poke.
// Pokes within pokeMinGap of the last poll are coalesced into one poll at
// the end of the gap: an engine creating many attempts must not turn
// IDLE into a busy poll.
func (s *watchSession) await(ctx context.Context, exists <-chan struct{}, every time.Duration, stage string) (woke bool, err error) {
	t := time.NewTimer(every)
	defer t.Stop()
	poke := s.w.poke
	var gap <-chan time.Time
	for {
		select {
		case <-exists:
			return true, nil
		case <-poke:
			if d := pokeMinGap - time.Since(s.lastPoll); d > 0 {
				poke, gap = nil, time.After(d)
				continue
			}
			return false, nil
		case <-gap:
			return false, nil
		case <-t.C:
			return false, nil
		case <-s.c.Closed():
			return false, s.w.fail(stage, errors.New("connection closed by server"))
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}
