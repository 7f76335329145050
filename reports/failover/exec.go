package failover

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os/exec"
	"strings"
	"time"

	"github.com/otpprobe/otpprobe/targets"
)

// execHook runs a route's exec command once per transition, in order, with
// the transition as JSON on stdin. A slow or failing command delays only
// the next run of the same hook, never a decision.
type execHook struct {
	route string
	cfg   targets.Exec
	log   *slog.Logger
	ch    chan Transition
}

func newExecHook(route string, cfg targets.Exec, log *slog.Logger) *execHook {
	return &execHook{route: route, cfg: cfg, log: log.With("route", route, "hook", cfg.Command[0]), ch: make(chan Transition, 64)}
}

func (h *execHook) queue(t Transition) {
	select {
	case h.ch <- t:
	default:
		h.log.Error("exec hook queue full; transition not passed to the hook", "to_state", t.ToState)
	}
}

func (h *execHook) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case t := <-h.ch:
			if err := h.exec(ctx, t); err != nil && ctx.Err() == nil {
				h.log.Error("exec hook failed", "to_state", t.ToState, "err", err)
			}
		}
	}
}

// maxHookOutput bounds what of the command's output is logged.
const maxHookOutput = 1024

func (h *execHook) exec(ctx context.Context, t Transition) error {
	in, err := json.Marshal(t)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.cfg.Command[0], h.cfg.Command[1:]...)
	cmd.Dir = h.cfg.Dir()
	cmd.Stdin = bytes.NewReader(append(in, '\n'))
	var out limited
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second // a child keeping the pipes open must not hang us
	start := time.Now()
	err = cmd.Run()
	h.log.Info("exec hook ran", "to_state", t.ToState, "duration_ms", time.Since(start).Milliseconds(),
		"ok", err == nil, "output", strings.TrimSpace(out.String()))
	return err
}

// limited keeps the first maxHookOutput bytes written to it.
type limited struct{ bytes.Buffer }

func (l *limited) Write(p []byte) (int, error) {
	if room := maxHookOutput - l.Len(); room > 0 {
		l.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
