package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/reports/attempts"
	"github.com/otpprobe/otpprobe/reports/store"
)

// historyConfig writes a config whose store holds n attempts (every
// second one of sender m365) and returns its path.
func historyConfig(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	db := filepath.Join(dir, "otpprobe.db")
	cfg := fmt.Sprintf(`
senders:
  - {name: m365, host: smtp.example.com, auth: {username: u, password: sender-secret-1}, from: otp@example.com}
  - {name: backup, host: relay.example.com, auth: {username: u, password: sender-secret-2}, from: otp@example.com}
mailboxes:
  - {name: gmail, provider: gmail, address: seed@gmail.example, auth: {username: u, password: mailbox-secret}}
probes:
  - {name: otp, schedule: "@every 1m", senders: [m365, backup], mailboxes: [gmail]}
store: {path: %q}
`, db)
	path := filepath.Join(dir, "otpprobe.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	base := time.Now().UTC().Add(-time.Hour)
	for i := range n {
		a := &attempt.Attempt{ID: fmt.Sprintf("01a0-%03d", i), Probe: "otp", Sender: []string{"m365", "backup"}[i%2],
			Mailbox: "gmail", Provider: "gmail", CreatedAt: base.Add(time.Duration(i) * time.Second), Outcome: attempt.OutcomeSpam,
			Transcript: "S: 220 ready\r\n", Diagnosis: "dkim=fail at gmail"}
		if err := st.Create(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func TestAttemptsCommand(t *testing.T) {
	ctx := context.Background()
	cfg := historyConfig(t, 7)
	code, out, errOut := run(t, ctx, "attempts", "--config", cfg, "--sender", "m365", "--limit", "2", "--since", "2h")
	if code != exitOK || !strings.Contains(out, "01a0-006") || !strings.Contains(out, "01a0-004") || strings.Contains(out, "01a0-002") {
		t.Fatalf("attempts: exit %d\n%s%s", code, out, errOut)
	}
	i := strings.Index(out, "--cursor ")
	if i < 0 {
		t.Fatalf("no cursor for the next page:\n%s", out)
	}
	cursor := strings.TrimSpace(out[i+len("--cursor "):])
	code, out, errOut = run(t, ctx, "attempts", "--config", cfg, "--sender", "m365", "--limit", "2", "--since", "2h", "--cursor", cursor, "--format", "json")
	var page attempts.PageJSON
	if err := json.Unmarshal([]byte(out), &page); code != exitOK || err != nil {
		t.Fatalf("attempts --format json: exit %d %v\n%s%s", code, err, out, errOut)
	}
	if len(page.Attempts) != 2 || page.Attempts[0].ID != "01a0-002" || page.Attempts[1].ID != "01a0-000" || page.NextCursor != "" {
		t.Errorf("second page %+v", page)
	}

	code, out, errOut = run(t, ctx, "attempts", "show", "01a0-003", "--config", cfg)
	if code != exitOK || !strings.Contains(out, "backup") || !strings.Contains(out, "S: 220 ready") || !strings.Contains(out, "dkim=fail at gmail") {
		t.Errorf("attempts show: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut = run(t, ctx, "attempts", "show", "nope", "--config", cfg); code != exitFailed || !strings.Contains(errOut, `no attempt "nope"`) {
		t.Errorf("attempts show nope: exit %d %s", code, errOut)
	}
	if code, _, errOut = run(t, ctx, "attempts", "--config", cfg, "--outcome", "arrived"); code != exitUsage || !strings.Contains(errOut, "--outcome") {
		t.Errorf("bad outcome: exit %d %s", code, errOut)
	}
}
