package store

import (
	"context"
	"reflect"
	"testing"
	"time"
)

func TestRouteStateAndTransitions(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	if _, ok, err := s.Route(ctx, "otp"); ok || err != nil {
		t.Fatalf("empty store: %v %v", ok, err)
	}
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	st := RouteState{Route: "otp", ActiveSender: "m365", State: "primary", Since: t0, Reason: "start"}
	if err := s.SaveRoute(ctx, &st, nil, nil); err != nil || st.Version != 1 {
		t.Fatalf("first save: version %d, %v", st.Version, err)
	}
	for i := range 5 {
		st.State, st.ActiveSender, st.Evidence, st.BadRounds = "backup", "backup", []string{"a1", "a2"}, i
		tr := RouteTransition{Route: "otp", At: t0.Add(time.Duration(i) * time.Minute), FromState: "failing_over", ToState: "backup",
			FromSender: "m365", ToSender: "backup", Reason: "r", Evidence: []string{"a1"}}
		out := []OutboxEntry{{Notifier: "webhook:ops", Kind: "route_transition", Payload: []byte(`{"i":1}`)}}
		if err := s.SaveRoute(ctx, &st, &tr, out); err != nil {
			t.Fatal(err)
		}
		if tr.ID == 0 || out[0].ID == 0 {
			t.Fatalf("IDs not set: %d %d", tr.ID, out[0].ID)
		}
	}
	got, ok, err := s.Route(ctx, "otp")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if got.Version != 6 || got.BadRounds != 4 || got.ActiveSender != "backup" || !reflect.DeepEqual(got.Evidence, []string{"a1", "a2"}) || !got.Since.Equal(t0) {
		t.Errorf("stored %+v", got)
	}
	trs, err := s.Transitions(ctx, "otp", time.Time{}, 2)
	if err != nil || len(trs) != 2 || !trs[0].At.Equal(t0.Add(3*time.Minute)) || !trs[1].At.Equal(t0.Add(4*time.Minute)) {
		t.Errorf("newest 2 transitions, oldest first: %+v %v", trs, err)
	}
	trs, _ = s.Transitions(ctx, "otp", t0.Add(90*time.Second), 0)
	if len(trs) != 3 {
		t.Errorf("%d transitions since 1m30s, want 3", len(trs))
	}
	// A manual change keeps who made it and from where.
	tr := RouteTransition{Route: "otp", At: t0.Add(time.Hour), FromState: "backup", ToState: "pinned",
		FromSender: "backup", ToSender: "m365", Reason: "pinned", Actor: "oncall", Source: "192.0.2.7"}
	if err := s.SaveRoute(ctx, &st, &tr, nil); err != nil {
		t.Fatal(err)
	}
	trs, _ = s.Transitions(ctx, "otp", t0.Add(time.Hour), 0)
	if len(trs) != 1 || trs[0].Actor != "oncall" || trs[0].Source != "192.0.2.7" {
		t.Errorf("manual transition read back as %+v", trs)
	}
	// The timeline's read (incidents, evidence) keeps them too.
	trs, _ = s.TransitionsBetween(ctx, []string{"otp"}, t0.Add(time.Hour), t0.Add(2*time.Hour))
	if len(trs) != 1 || trs[0].Actor != "oncall" || trs[0].Source != "192.0.2.7" {
		t.Errorf("manual transition in a window read back as %+v", trs)
	}
	if n, _ := s.UndeliveredCount(ctx); n != 5 {
		t.Errorf("%d queued with the transitions, want 5", n)
	}
}

func TestPins(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	if err := s.SetPin(ctx, RoutePin{Route: "otp", Sender: "backup", Reason: "x", At: at}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPin(ctx, RoutePin{Route: "otp", Sender: "m365", At: at, Actor: "oncall", Source: "192.0.2.7"}); err != nil {
		t.Fatal(err)
	}
	pins, err := s.Pins(ctx)
	if err != nil || len(pins) != 1 || pins["otp"].Sender != "m365" || !pins["otp"].At.Equal(at) ||
		pins["otp"].Actor != "oncall" || pins["otp"].Source != "192.0.2.7" {
		t.Fatalf("pins %+v %v", pins, err)
	}
	if err := s.DeletePin(ctx, "otp"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePin(ctx, "otp"); err != nil {
		t.Fatal(err)
	}
	if pins, _ := s.Pins(ctx); len(pins) != 0 {
		t.Errorf("pins after delete %+v", pins)
	}
}

func TestAlertsAndOutbox(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	a := AlertRecord{Key: "k1", Name: "OTPSenderDown", Status: "firing", Labels: map[string]string{"sender": "m365"},
		Annotations: map[string]string{"summary": "down"}, Evidence: []string{"a1"}, StartsAt: now}
	q := func(n int) []OutboxEntry {
		var out []OutboxEntry
		for range n {
			out = append(out, OutboxEntry{Notifier: "webhook:ops", Kind: "alert", Payload: []byte(`{}`)})
		}
		return out
	}
	if err := s.SaveAlert(ctx, a, q(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveAlert(ctx, AlertRecord{Key: "k2", Name: "OTPProviderSpam", Status: "firing", StartsAt: now}, nil); err != nil {
		t.Fatal(err)
	}
	firing, err := s.FiringAlerts(ctx)
	if err != nil || len(firing) != 2 || !reflect.DeepEqual(firing[0].Labels, a.Labels) || firing[0].Annotations["summary"] != "down" {
		t.Fatalf("firing %+v %v", firing, err)
	}
	a.Status, a.EndsAt = "resolved", now.Add(time.Minute)
	if err := s.SaveAlert(ctx, a, q(1)); err != nil {
		t.Fatal(err)
	}
	if firing, _ := s.FiringAlerts(ctx); len(firing) != 1 || firing[0].Key != "k2" {
		t.Errorf("firing after resolve %+v", firing)
	}
	if err := s.Enqueue(ctx, append(q(1), OutboxEntry{Notifier: "alertmanager:am", Kind: "alert", Payload: []byte(`{}`)})); err != nil {
		t.Fatal(err)
	}

	due, err := s.DueOutbox(ctx, time.Now(), 10)
	if err != nil || len(due) != 4 {
		t.Fatalf("due %d %v", len(due), err)
	}
	// A failure of the first webhook entry holds back the webhook's later
	// entries, not the other notifier's (due again once its lease ended,
	// where agents share the store).
	if err := s.Retry(ctx, due[0], time.Now().Add(time.Hour), "HTTP 503"); err != nil {
		t.Fatal(err)
	}
	due, _ = s.DueOutbox(ctx, time.Now().Add(OutboxLease+time.Second), 10)
	if len(due) != 1 || due[0].Notifier != "alertmanager:am" {
		t.Fatalf("due after a webhook failure: %+v", due)
	}
	if err := s.Delivered(ctx, due[0].ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	later, _ := s.DueOutbox(ctx, time.Now().Add(2*time.Hour), 10)
	if len(later) != 3 || later[0].Tries != 1 || later[0].LastError != "HTTP 503" {
		t.Errorf("due later %+v", later)
	}
	next, ok, err := s.NextOutbox(ctx)
	if err != nil || !ok || next.Before(time.Now().Add(50*time.Minute)) {
		t.Errorf("next %v %v %v", next, ok, err)
	}
	if err := s.PruneOutbox(ctx, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.UndeliveredCount(ctx); n != 3 {
		t.Errorf("undelivered %d after pruning delivered ones", n)
	}
}

func TestTally(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	base := newAttempt(0).CreatedAt
	for i := range 10 {
		a := newAttempt(i + 100)
		a.CreatedAt, a.Sender, a.Provider = base.Add(time.Duration(i)*time.Second), "m365", "gmail"
		a.Outcome, a.SubmittedAt, a.SeenAt = "inbox", a.CreatedAt, a.CreatedAt.Add(time.Duration(i)*time.Second)
		if i == 9 {
			a.Outcome, a.SeenAt = "lost", time.Time{}
		}
		if i == 8 {
			a.Provider = "yahoo"
		}
		if err := s.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	good, total, err := s.Tally(ctx, TallyFilter{From: base, To: base.Add(time.Hour), Sender: "m365", Latency: 5 * time.Second})
	if err != nil || good != 6 || total != 10 {
		t.Errorf("tally %d/%d %v, want 6/10 (0-5 s good, 6-8 s late, one lost)", good, total, err)
	}
	good, total, _ = s.Tally(ctx, TallyFilter{From: base, To: base.Add(time.Hour), Provider: "yahoo", Latency: time.Minute})
	if good != 1 || total != 1 {
		t.Errorf("yahoo tally %d/%d", good, total)
	}
}
