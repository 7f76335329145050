package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/reports/store"
)

// TestRunOnPostgres: the daemon runs the lab on store.driver: postgres
// (scripts/test.sh starts a throw-away server; without one this skips, and
// fails under CI=true): attempts are decided and stored, the route state
// is kept there, and otpprobe attempts reads them back. Attempts carry
// the agent, and at start the agent resumes only its own pending attempts:
// another agent's stays pending for that agent to resume.
func TestRunOnPostgres(t *testing.T) {
	ctx := context.Background()
	conn, schema, dsn := postgresSchema(t, "otpprobe_run")

	w, err := lab.Start(ctx, lab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	dir := t.TempDir()
	cfgPath, err := w.Endpoints().WriteConfig(lab.ConfigOptions{Dir: dir, Schedule: "@every 1s", Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("OTPPROBE_TEST_PG_DSN", dsn)
	cfg := regexp.MustCompile(`(?m)^store:\n  path: .*\n`).ReplaceAllLiteral(data, []byte("store:\n  driver: postgres\n  dsn: ${OTPPROBE_TEST_PG_DSN}\n"))
	if !strings.Contains(string(cfg), "driver: postgres") {
		t.Fatalf("no store section replaced in:\n%s", data)
	}
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}

	// Two attempts left pending by a crash during their submission, past
	// their deadline: the lab agent's own is resumed (and decided at once:
	// send_failed, interrupted), another agent's is not touched.
	st, err := store.OpenPostgres(ctx, os.Getenv("OTPPROBE_TEST_PG_DSN"))
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	for i, agent := range []string{"lab", "other-region"} {
		a := &attempt.Attempt{ID: fmt.Sprintf("0190a6f2-0000-7000-8000-00000000000%d", i), Agent: agent, Probe: "otp",
			Sender: "m365", Mailbox: "gmail", Provider: "gmail", Token: fmt.Sprintf("tok%d", i), MessageID: fmt.Sprintf("%d@x", i),
			CreatedAt: past, Deadline: past.Add(time.Minute), Outcome: attempt.OutcomePending}
		if err := st.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	d := startDaemon(t, ctx, cfgPath, daemonOptions{})
	eventually(t, "inbox attempts stored in PostgreSQL", func() bool {
		var n int
		err := conn.QueryRow(ctx, "SELECT count(*) FROM "+schema+".attempts WHERE outcome = 'inbox'").Scan(&n)
		return err == nil && n >= 2
	})
	outcomeOf := func(id string) string {
		var o string
		if err := conn.QueryRow(ctx, "SELECT outcome FROM "+schema+".attempts WHERE id = $1", id).Scan(&o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	eventually(t, "the lab agent's own pending attempt resumed (send_failed)", func() bool {
		return outcomeOf("0190a6f2-0000-7000-8000-000000000000") == "send_failed"
	})
	if o := outcomeOf("0190a6f2-0000-7000-8000-000000000001"); o != "pending" {
		t.Errorf("another agent's pending attempt became %q: an agent must resume only its own", o)
	}
	var agents []string
	rows, err := conn.Query(ctx, "SELECT DISTINCT agent FROM "+schema+".attempts WHERE outcome = 'inbox'")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			t.Fatal(err)
		}
		agents = append(agents, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(agents) != 1 || agents[0] != "lab" {
		t.Errorf("agents of the stored attempts %v; want [lab]", agents)
	}
	var route string
	if err := conn.QueryRow(ctx, "SELECT active_sender FROM "+schema+".route_state WHERE route = 'otp'").Scan(&route); err != nil || route != "m365" {
		t.Errorf("route state in PostgreSQL: %q %v", route, err)
	}
	if code, body := d.Get("/api/v1/routes/otp"); code != http.StatusOK {
		t.Fatalf("GET route: %d %s", code, body)
	}
	if code := d.Stop(); code != exitOK {
		t.Errorf("run exit %d:\n%s", code, d.Logs)
	}
	code, out, errOut := run(t, ctx, "attempts", "--config", cfgPath, "--outcome", "inbox")
	if code != exitOK || !strings.Contains(out, "inbox") {
		t.Errorf("otpprobe attempts on PostgreSQL: exit %d %s %s", code, out, errOut)
	}
}

// postgresSchema gives the test a schema of its own on the PostgreSQL
// server make test starts (OTPPROBE_POSTGRES_URL; without it the test
// skips, and fails under CI=true): a connection to it, its name, and a DSN
// whose search_path is that schema. The schema is dropped at the end.
func postgresSchema(t *testing.T, prefix string) (conn *pgx.Conn, schema, dsn string) {
	t.Helper()
	url := os.Getenv("OTPPROBE_POSTGRES_URL")
	if url == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("OTPPROBE_POSTGRES_URL is not set under CI=true")
		}
		t.Skip("OTPPROBE_POSTGRES_URL is not set")
	}
	ctx := context.Background()
	schema = fmt.Sprintf("%s_%d", prefix, time.Now().UnixNano())
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		conn.Close(ctx)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		conn.Close(context.Background())
	})
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return conn, schema, url + sep + "search_path=" + schema
}
