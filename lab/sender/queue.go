package sender

import (
	"context"
	"strings"
	"sync"
	"time"
)

// queuedMessage is one accepted message as it will be relayed.
type queuedMessage struct {
	id      string // queue ID
	from    string // envelope sender; "" for DSNs
	data    []byte // signed, CRLF
	arrival time.Time
}

// delivery is the part of a message bound for one recipient domain: the
// unit the relay attempts, defers and bounces.
type delivery struct {
	msg      *queuedMessage
	domain   string
	rcpts    []string
	attempts int
}

// queue holds deliveries that are ready, being attempted, or waiting for
// their retry time. Deferred deliveries sit in timers, not in a sorted
// structure: the lab's queues are small and short-lived.
type queue struct {
	mu      sync.Mutex
	ready   []*delivery
	pending int // ready + in flight + waiting for retry
	timers  map[*time.Timer]struct{}
	closed  bool
	wake    chan struct{} // capacity 1: "ready is not empty"
}

func newQueue() *queue {
	return &queue{timers: make(map[*time.Timer]struct{}), wake: make(chan struct{}, 1)}
}

// enqueue splits a message by recipient domain, keeping the recipients'
// order within each domain.
func (q *queue) enqueue(m *queuedMessage, rcpts []string) {
	var order []string
	byDomain := make(map[string][]string)
	for _, r := range rcpts {
		d := domainOf(r)
		if _, ok := byDomain[d]; !ok {
			order = append(order, d)
		}
		byDomain[d] = append(byDomain[d], r)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	for _, d := range order {
		q.pending++
		q.ready = append(q.ready, &delivery{msg: m, domain: d, rcpts: byDomain[d]})
	}
	q.signal()
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// next blocks until a delivery is ready or ctx ends.
func (q *queue) next(ctx context.Context) (*delivery, bool) {
	for {
		q.mu.Lock()
		if len(q.ready) > 0 {
			d := q.ready[0]
			q.ready[0] = nil
			q.ready = q.ready[1:]
			if len(q.ready) > 0 {
				q.signal() // let another worker pick the rest
			}
			q.mu.Unlock()
			return d, true
		}
		q.mu.Unlock()
		select {
		case <-q.wake:
		case <-ctx.Done():
			return nil, false
		}
	}
}

// retry puts d back after delay; it stays pending meanwhile.
func (q *queue) retry(d *delivery, delay time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		delete(q.timers, t)
		if q.closed {
			return
		}
		q.ready = append(q.ready, d)
		q.signal()
	})
	q.timers[t] = struct{}{}
}

// done marks d finished (delivered or bounced).
func (q *queue) done(*delivery) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending--
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.pending
}

func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	for t := range q.timers {
		t.Stop()
	}
	clear(q.timers)
	q.ready = nil
}

func (d *delivery) String() string {
	return d.msg.id + " to " + d.domain + " (" + strings.Join(d.rcpts, ",") + ")"
}
