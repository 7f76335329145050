package health

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestReadyz(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	c := New(func() time.Time { return t0 })
	down := false
	c.Add(func(now time.Time) []Problem {
		if !down {
			return nil
		}
		return []Problem{{Component: "watcher", Name: "gmail/INBOX", Reason: "connection refused", Since: now.Add(-time.Minute)}}
	})
	c.Add(func(time.Time) []Problem { return nil })
	get := func() (int, Status) {
		rec := httptest.NewRecorder()
		c.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		var st Status
		if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
			t.Fatalf("body %q: %v", rec.Body, err)
		}
		return rec.Code, st
	}
	if code, st := get(); code != 200 || !st.Ready || st.Problems == nil || len(st.Problems) != 0 {
		t.Errorf("ready: %d %+v", code, st)
	}
	down = true
	code, st := get()
	if code != 503 || st.Ready || len(st.Problems) != 1 || st.Problems[0].Name != "gmail/INBOX" || !st.Problems[0].Since.Equal(t0.Add(-time.Minute)) {
		t.Errorf("down: %d %+v", code, st)
	}
}
