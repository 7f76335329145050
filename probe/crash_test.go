package probe_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/probe"
	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
)

const crashChildEnv = "OTPPROBE_CRASH_CHILD_CONFIG"

// crashChild is the prober process the crash test kills: it runs one round,
// says so, and waits to be killed with SIGKILL.
func crashChild() int {
	cfg, err := targets.Load(os.Getenv(crashChildEnv))
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, cfg.Store.Path)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	e, err := probe.New(cfg, probe.Options{Store: st})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	if err := e.Start(ctx); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	round, err := e.Round(ctx, "otp")
	as := round.Attempts
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("sent", len(as))
	select {}
}

// The prober is SIGKILLed between send and receive; a new prober on the same
// database finds every attempt, and each ends exactly once.
func TestEngineSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	w, cfg := labConfig(t, lab.Options{ProviderDelay: 3 * time.Second}, lab.ConfigOptions{})
	if err := w.Apply("provider-delay"); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(filepath.Dir(cfg.Store.Path), "otpprobe.yaml")
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), crashChildEnv+"="+cfgPath)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
	}()
	select {
	case l := <-line:
		if !strings.HasPrefix(l, "sent 6") {
			child.Process.Kill()
			t.Fatalf("child: %q", l)
		}
	case <-time.After(time.Minute):
		child.Process.Kill()
		t.Fatal("child never finished its round")
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()

	st := openStore(t, cfg.Store.Path)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pending, err := st.Pending(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	all, err := st.List(ctx, attempt.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 6 {
		t.Fatalf("%d attempts in the store after the crash, want 6", len(all))
	}
	var c collector
	e := startEngine(t, ctx, cfg, st, &c)
	ids := make([]string, len(pending))
	for i, a := range pending {
		ids[i] = a.ID
	}
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	if err := e.Wait(wctx, ids...); err != nil {
		t.Fatalf("resumed attempts not decided: %v", err)
	}
	all, _ = st.List(ctx, attempt.Filter{})
	for _, a := range all {
		if a.Outcome != attempt.OutcomeInbox {
			t.Errorf("%s→%s: %s after the crash", a.Sender, a.Mailbox, a.Outcome)
		}
	}
	for _, a := range pending {
		if n := c.count(a.ID); n != 1 {
			t.Errorf("%s published %d times", a.ID, n)
		}
	}
	t.Logf("killed with %d of 6 attempts pending; all resumed and delivered", len(pending))
}
