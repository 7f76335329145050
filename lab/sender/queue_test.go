package sender

import (
	"context"
	"testing"
	"time"
)

func TestBackoffDoublesAndCaps(t *testing.T) {
	s := &Server{cfg: Config{RetryInterval: time.Second}}
	want := []time.Duration{1, 2, 4, 8, 16, 16, 16}
	for i, w := range want {
		if got := s.backoff(i + 1); got != w*time.Second {
			t.Errorf("backoff(%d) = %s, want %s", i+1, got, w*time.Second)
		}
	}
}

func TestQueueSplitsByDomainAndCountsPending(t *testing.T) {
	q := newQueue()
	q.enqueue(&queuedMessage{id: "Q"}, []string{"a@gmail.test", "b@yahoo.test", "c@Gmail.Test"})
	if q.len() != 2 {
		t.Fatalf("pending = %d, want 2 (one per domain)", q.len())
	}
	ctx := context.Background()
	d1, _ := q.next(ctx)
	d2, _ := q.next(ctx)
	if d1.domain != "gmail.test" || len(d1.rcpts) != 2 || d2.domain != "yahoo.test" {
		t.Fatalf("deliveries %v / %v", d1, d2)
	}
	q.retry(d2, time.Millisecond)
	if d, ok := q.next(ctx); !ok || d != d2 {
		t.Fatalf("retried delivery not handed out again: %v", d)
	}
	q.done(d1)
	q.done(d2)
	if q.len() != 0 {
		t.Errorf("pending = %d after done", q.len())
	}
	q.close()
	q.enqueue(&queuedMessage{id: "R"}, []string{"a@gmail.test"})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, ok := q.next(cctx); ok {
		t.Error("closed queue accepted a message")
	}
}
