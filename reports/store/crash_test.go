package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/otpprobe/otpprobe/attempt"
)

const (
	crashEnvDB    = "OTPPROBE_STORE_CRASH_DB"
	crashEnvStart = "OTPPROBE_STORE_CRASH_START"
)

// crashAttempt is attempt i as the crash child writes it; big headers now
// and then so transactions span several pages.
func crashAttempt(i int, final bool) *attempt.Attempt {
	a := newAttempt(i)
	if final {
		finish(a, i)
		if i%4 == 0 {
			a.Header = strings.Repeat(fmt.Sprintf("Received: from relay%d.example.net by mx;\r\n", i), 150)
		}
	}
	return a
}

// TestCrashChild is the writer that TestCrashSafety kills; it does
// nothing unless started by it.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnvDB)
	if path == "" {
		t.Skip("run by TestCrashSafety")
	}
	start, _ := strconv.Atoi(os.Getenv(crashEnvStart))
	ctx := context.Background()
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	// Each line is written only after the transaction it reports committed.
	for i := start; ; i++ {
		if err := s.Create(ctx, crashAttempt(i, false)); err != nil {
			fmt.Println("error", err)
			os.Exit(3)
		}
		fmt.Printf("created %d\n", i)
		if err := s.Update(ctx, crashAttempt(i, true)); err != nil {
			fmt.Println("error", err)
			os.Exit(3)
		}
		fmt.Printf("updated %d\n", i)
	}
}

// TestCrashSafety SIGKILLs a process writing attempts, several times, and
// checks after each kill that every committed attempt is there and intact
// and that the database is sound.
func TestCrashSafety(t *testing.T) {
	sqliteOnly(t)
	if os.Getenv(crashEnvDB) != "" {
		t.Skip("in the crash child")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "crash.db")
	next := 0
	for round, killAfter := range []int{150, 211, 377} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnvDB+"="+path, crashEnvStart+"="+strconv.Itoa(next))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		committed := map[int]bool{} // index → final version committed
		sc := bufio.NewScanner(out)
		lines := 0
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 2 || (f[0] != "created" && f[0] != "updated") {
				if f[0] == "error" {
					t.Fatalf("round %d: child: %s", round, sc.Text())
				}
				continue
			}
			i, _ := strconv.Atoi(f[1])
			committed[i] = f[0] == "updated"
			if lines++; lines == killAfter {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("round %d: child ended with %v, want killed", round, err)
		}
		if len(committed) == 0 {
			t.Fatalf("round %d: child committed nothing", round)
		}

		s, err := OpenSQLite(ctx, path)
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		var check string
		if err := s.r.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
			t.Fatalf("round %d: integrity_check = %q, %v", round, check, err)
		}
		for i, final := range committed {
			got, err := s.Get(ctx, newAttempt(i).ID)
			if err != nil {
				t.Fatalf("round %d: committed attempt %d: %v", round, i, err)
			}
			// An update may have committed just before the kill, unreported.
			if !final && !got.Outcome.Final() {
				mustEqual(t, got, stored(crashAttempt(i, false)))
			} else {
				mustEqual(t, got, stored(crashAttempt(i, true)))
			}
		}
		// Nothing torn either: every stored row is one of the two versions.
		all, err := s.List(ctx, attempt.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		maxIndex := -1
		for i := range committed {
			maxIndex = max(maxIndex, i)
		}
		if len(all) < maxIndex+1 || len(all) > maxIndex+2 {
			t.Fatalf("round %d: %d rows stored, %d reported committed", round, len(all), maxIndex+1)
		}
		for i, a := range all {
			if a.Outcome.Final() {
				mustEqual(t, a, stored(crashAttempt(i, true)))
			} else {
				mustEqual(t, a, stored(crashAttempt(i, false)))
			}
		}
		t.Logf("round %d: killed after %d reports; %d attempts intact", round, killAfter, len(all))
		next = len(all)
		s.Close()
	}
}
