package metrics

import (
	"strings"
	"sync"
)

const (
	// maxLabelValues caps the distinct values of each label. Values come from
	// the config, so a real deployment stays far below it; the cap keeps a
	// bug (an ID or address used as a name) from growing series without end.
	maxLabelValues = 64
	otherValue     = "other"   // a value past the cap, or outside a fixed set
	unknownValue   = "unknown" // an empty value
)

// limiter maps label values to themselves until a label has seen
// maxLabelValues of them, and every later new value to "other".
type limiter struct {
	mu   sync.Mutex
	max  int
	seen map[string]map[string]struct{}
}

func newLimiter(max int) *limiter {
	return &limiter{max: max, seen: make(map[string]map[string]struct{})}
}

func (l *limiter) value(label, v string) string {
	if v == "" {
		return unknownValue
	}
	v = strings.ToValidUTF8(v, "\uFFFD") // WithLabelValues panics on invalid UTF-8
	l.mu.Lock()
	defer l.mu.Unlock()
	vs := l.seen[label]
	if vs == nil {
		vs = make(map[string]struct{})
		l.seen[label] = vs
	}
	if _, ok := vs[v]; ok {
		return v
	}
	if len(vs) >= l.max {
		return otherValue
	}
	vs[v] = struct{}{}
	return v
}

// oneOf returns v when it is in set, "unknown" when empty, "other" otherwise.
func oneOf(v string, set ...string) string {
	if v == "" {
		return unknownValue
	}
	for _, s := range set {
		if v == s {
			return v
		}
	}
	return otherValue
}
