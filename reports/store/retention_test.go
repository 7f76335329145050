package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
)

func TestPrune(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	old := now.Add(-40 * 24 * time.Hour)
	mk := func(id, sender string, at time.Time, o attempt.Outcome) {
		a := &attempt.Attempt{ID: id, Probe: "otp", Sender: sender, Mailbox: "gmail", Provider: "gmail", CreatedAt: at, Outcome: o}
		if err := s.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 1200 { // more than two batches
		mk(fmt.Sprintf("old-%04d", i), "backup", old.Add(time.Duration(i)*time.Second), attempt.OutcomeInbox)
	}
	mk("old-pending", "backup", old, attempt.OutcomePending)
	mk("old-alert", "backup", old, attempt.OutcomeSpam)
	mk("old-incident", "m365", old.Add(time.Minute), attempt.OutcomeLost)
	mk("new", "backup", now.Add(-time.Hour), attempt.OutcomeInbox)
	if err := s.SaveAlert(ctx, AlertRecord{Key: "k", Name: "OTPProviderSpam", Status: "firing", Evidence: []string{"old-alert"},
		StartsAt: old}, nil); err != nil {
		t.Fatal(err)
	}
	kept := &Incident{Probe: "otp", Sender: "m365", StartedAt: old, EndedAt: old.Add(time.Hour), LastBadAt: old}
	gone := &Incident{Probe: "otp", Sender: "m365", StartedAt: old.Add(-400 * 24 * time.Hour), EndedAt: old.Add(-399 * 24 * time.Hour), LastBadAt: old}
	for _, in := range []*Incident{kept, gone} {
		if err := s.SaveIncident(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	counts := map[string]int64{}
	batches := 0
	err := s.Prune(ctx, Retention{Attempts: 30 * 24 * time.Hour, DNS: 90 * 24 * time.Hour, History: 365 * 24 * time.Hour}, now,
		func(table string, n int64) { counts[table] += n; batches++ })
	if err != nil {
		t.Fatal(err)
	}
	if counts["attempts"] != 1200 || counts["incidents"] != 1 || batches < 4 {
		t.Errorf("pruned %v in %d batches, want 1200 attempts and 1 incident in ≥ 4 batches", counts, batches)
	}
	for _, id := range []string{"old-pending", "old-alert", "old-incident", "new"} {
		if _, err := s.Get(ctx, id); err != nil {
			t.Errorf("%s: %v, want kept", id, err)
		}
	}
	if _, err := s.Get(ctx, "old-0000"); !errors.Is(err, attempt.ErrNotFound) {
		t.Errorf("old-0000: %v, want pruned", err)
	}
	if _, err := s.Incident(ctx, kept.ID); err != nil {
		t.Errorf("recent incident: %v", err)
	}
}
