package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
)

// pager is the query side both stores have.
type pager interface {
	Attempts(ctx context.Context, q AttemptQuery) (AttemptPage, error)
}

// testPages walks every page of a filtered query and checks the order,
// the filter and that no attempt is skipped or repeated.
func testPages(t *testing.T, s attempt.Store) {
	ctx := context.Background()
	p := s.(pager)
	const n = 40
	for i := range n {
		a := newAttempt(i)
		if i%5 == 0 { // equal creation times: the ID breaks the tie
			a.CreatedAt = newAttempt(i - i%10).CreatedAt
		}
		finish(a, i)
		if err := s.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.List(ctx, attempt.Filter{Sender: "m365"})
	if err != nil {
		t.Fatal(err)
	}
	var got []*attempt.Attempt
	q := AttemptQuery{Sender: "m365", Limit: 3}
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatal("paging does not end")
		}
		pg, err := p.Attempts(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(pg.Attempts) > 3 {
			t.Fatalf("page of %d, limit 3", len(pg.Attempts))
		}
		got = append(got, pg.Attempts...)
		if pg.Next == "" {
			break
		}
		q.Cursor = pg.Next
	}
	if len(got) != len(all) {
		t.Fatalf("paged %d attempts, List has %d", len(got), len(all))
	}
	for i, a := range got { // newest first: List's order reversed
		if w := all[len(all)-1-i]; a.ID != w.ID {
			t.Fatalf("page position %d: %s, want %s", i, a.ID, w.ID)
		}
	}

	since := newAttempt(10).CreatedAt
	until := newAttempt(30).CreatedAt
	pg, err := p.Attempts(ctx, AttemptQuery{Since: since, Until: until, Outcome: attempt.OutcomeInbox, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range pg.Attempts {
		if a.Outcome != attempt.OutcomeInbox || a.CreatedAt.Before(since.Truncate(time.Millisecond)) || !a.CreatedAt.Before(until) {
			t.Errorf("attempt %s (%s at %s) outside the filter", a.ID, a.Outcome, a.CreatedAt)
		}
	}
	if len(pg.Attempts) == 0 || pg.Next != "" {
		t.Errorf("filtered page: %d attempts, next %q", len(pg.Attempts), pg.Next)
	}
	if _, err := p.Attempts(ctx, AttemptQuery{Cursor: "not-a-cursor!"}); !errors.Is(err, ErrBadCursor) {
		t.Errorf("bad cursor: %v, want ErrBadCursor", err)
	}
}

func TestPageLimit(t *testing.T) {
	for in, want := range map[int]int{0: DefaultPageLimit, -3: DefaultPageLimit, 7: 7, MaxPageLimit + 1: MaxPageLimit} {
		if got := PageLimit(in); got != want {
			t.Errorf("PageLimit(%d) = %d, want %d", in, got, want)
		}
	}
}
