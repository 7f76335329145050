package incidents_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/reports/incidents"
	"github.com/otpprobe/otpprobe/reports/rounds"
	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
)

const config = `
senders:
  - {name: m365, host: smtp.example.com, auth: {username: u, password: p}, from: otp@example.com}
  - {name: backup, host: relay.example.com, auth: {username: u, password: p}, from: otp@example.com}
mailboxes:
  - {name: gmail, provider: gmail, address: seed@gmail.example, auth: {username: u, password: p}}
  - {name: yahoo, provider: yahoo, address: seed@yahoo.example, auth: {username: u, password: p}}
probes:
  - {name: otp, schedule: "@every 1m", senders: [m365, backup], mailboxes: [gmail, yahoo]}
routes:
  - {name: otp, primary: m365, backups: [backup], unhealthy_providers: 2, healthy_rounds: 2}
`

var base = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// round is round n of sender with the given outcomes at gmail and yahoo.
func round(n int, sender string, gmail, yahoo attempt.Outcome) rounds.Round {
	start := base.Add(time.Duration(n) * time.Minute)
	r := rounds.Round{ID: fmt.Sprintf("r%d", n), Probe: "otp", Sender: sender, Start: start, Providers: []string{"gmail", "yahoo"}}
	for i, o := range []attempt.Outcome{gmail, yahoo} {
		mb := []string{"gmail", "yahoo"}[i]
		r.Attempts = append(r.Attempts, &attempt.Attempt{ID: fmt.Sprintf("a%d-%s-%s", n, sender, mb), Probe: "otp", Sender: sender,
			Mailbox: mb, Provider: mb, CreatedAt: start, Outcome: o, Diagnosis: map[bool]string{true: "", false: "DKIM selector1 has no key"}[o == attempt.OutcomeInbox]})
	}
	return r
}

func TestTracker(t *testing.T) {
	ctx := context.Background()
	cfg, err := targets.Parse([]byte(config), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(t.TempDir(), "otpprobe.db")
	st, err := store.OpenSQLite(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tr, err := incidents.New(ctx, cfg, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	in, sp, lost := attempt.OutcomeInbox, attempt.OutcomeSpam, attempt.OutcomeLost
	tr.ObserveRound(ctx, round(0, "m365", in, in))
	tr.ObserveRound(ctx, round(1, "m365", sp, in)) // one provider of two: below the route's threshold
	tr.ObserveRound(ctx, round(2, "m365", sp, lost))
	tr.ObserveRound(ctx, round(2, "backup", in, in))
	tr.ObserveRound(ctx, round(3, "m365", sp, sp))

	// A restart in the middle of the incident continues it.
	tr, err = incidents.New(ctx, cfg, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr.ObserveRound(ctx, round(4, "m365", in, in))
	tr.ObserveRound(ctx, round(5, "m365", sp, sp)) // relapse: the healthy streak starts again
	tr.ObserveRound(ctx, round(6, "m365", in, in))
	open, err := incidents.List(ctx, st, store.IncidentQuery{OpenOnly: true}, base.Add(time.Hour))
	if err != nil || len(open) != 1 {
		t.Fatalf("open incidents %+v (%v), want 1", open, err)
	}
	tr.ObserveRound(ctx, round(7, "m365", in, in))

	all, err := incidents.List(ctx, st, store.IncidentQuery{}, base.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 {
		t.Fatalf("%d incidents, want 1: %+v", len(all), all)
	}
	j := all[0]
	if j.ID != 1 || j.State != "resolved" || j.Sender != "m365" || !j.StartedAt.Equal(base.Add(2*time.Minute)) ||
		j.EndedAt == nil || !j.EndedAt.Equal(base.Add(6*time.Minute)) || j.Rounds != 3 {
		t.Errorf("incident %+v", j)
	}
	if j.Counts.Spam != 5 || j.Counts.Lost != 1 || j.Counts.Total != 12 || len(j.Providers) != 2 {
		t.Errorf("counts %+v providers %v", j.Counts, j.Providers)
	}
	if len(j.Diagnoses) != 1 || j.Diagnoses[0].Count != 6 || j.Routes[0] != "otp" {
		t.Errorf("diagnoses %+v routes %v", j.Diagnoses, j.Routes)
	}
}
