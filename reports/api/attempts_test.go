package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/reports/attempts"
	"github.com/otpprobe/otpprobe/reports/store"
)

func TestAttempts(t *testing.T) {
	srv, st := newServer(t)
	ctx := context.Background()
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	for i := range 5 {
		a := &attempt.Attempt{ID: fmt.Sprintf("01a0-%d", i), Probe: "otp", Sender: []string{"m365", "backup"}[i%2],
			Mailbox: "gmail", Provider: "gmail", CreatedAt: base.Add(time.Duration(i) * time.Minute),
			Outcome: attempt.OutcomeInbox, SubmittedAt: base.Add(time.Duration(i)*time.Minute + time.Second),
			SeenAt: base.Add(time.Duration(i)*time.Minute + 3*time.Second), Transcript: "C: AUTH PLAIN [redacted]\r\n",
			Header: "Subject: Your code\r\n", Detail: `{"bounce":null}`}
		if err := st.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
	}

	var ids []string
	next := srv.URL + "/api/v1/attempts?limit=2&since=2h"
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		resp, body := do(t, "GET", next, "", "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", next, resp.StatusCode, body)
		}
		var p attempts.PageJSON
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatal(err)
		}
		for _, a := range p.Attempts {
			ids = append(ids, a.ID)
		}
		next = ""
		if p.NextCursor != "" {
			next = srv.URL + "/api/v1/attempts?limit=2&since=2h&cursor=" + url.QueryEscape(p.NextCursor)
		}
	}
	if got := strings.Join(ids, ","); got != "01a0-4,01a0-3,01a0-2,01a0-1,01a0-0" {
		t.Errorf("paged IDs %s, want newest first", got)
	}

	resp, body := do(t, "GET", srv.URL+"/api/v1/attempts?sender=backup&outcome=inbox", "", "")
	if resp.StatusCode != http.StatusOK || strings.Count(body, `"id"`) != 2 || strings.Contains(body, `"m365"`) {
		t.Errorf("sender filter: %d %s", resp.StatusCode, body)
	}

	resp, body = do(t, "GET", srv.URL+"/api/v1/attempts/01a0-3", "", "")
	var d attempts.Detail
	if err := json.Unmarshal([]byte(body), &d); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("detail: %d %s (%v)", resp.StatusCode, body, err)
	}
	if d.Transcript == "" || d.Header == "" || d.Timings.LatencyMS != 2000 || string(d.Detail) != `{"bounce":null}` {
		t.Errorf("detail %+v", d)
	}

	resp, body = do(t, "GET", srv.URL+"/api/v1/evidence?id=01a0-3&id=01a0-4", "", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/zip" || !strings.HasPrefix(body, "PK") {
		t.Errorf("evidence: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for path, want := range map[string]int{
		"/api/v1/evidence?id=nope":           http.StatusNotFound,
		"/api/v1/evidence":                   http.StatusBadRequest,
		"/api/v1/evidence?route=otp":         http.StatusBadRequest,
		"/api/v1/evidence?incident=abc":      http.StatusBadRequest,
		"/api/v1/attempts/nope":              http.StatusNotFound,
		"/api/v1/attempts?limit=100000":      http.StatusBadRequest,
		"/api/v1/attempts?outcome=arrived":   http.StatusBadRequest,
		"/api/v1/attempts?since=yesterday":   http.StatusBadRequest,
		"/api/v1/attempts?cursor=zzz":        http.StatusBadRequest,
		"/api/v1/attempts?sendr=m365":        http.StatusBadRequest,
		"/api/v1/attempts?since=1h&until=2h": http.StatusBadRequest,
	} {
		resp, body := do(t, "GET", srv.URL+path, "", "")
		if resp.StatusCode != want || !strings.Contains(body, `"error"`) {
			t.Errorf("GET %s: %d %s, want %d", path, resp.StatusCode, body, want)
		}
	}
}

func TestIncidents(t *testing.T) {
	srv, st := newServer(t)
	in := &store.Incident{Probe: "otp", Sender: "m365", Routes: []string{"otp"}, StartedAt: time.Now().Add(-time.Hour).UTC(),
		LastBadAt: time.Now().UTC(), Rounds: 2, Counts: map[string]int{"spam": 2, "total": 4}}
	if err := st.SaveIncident(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	resp, body := do(t, "GET", srv.URL+"/api/v1/incidents?open=true&since=2h", "", "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"state":"open"`) || !strings.Contains(body, `"spam":2`) {
		t.Errorf("incidents: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", srv.URL+"/api/v1/incidents/1", "", "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"id":1`) {
		t.Errorf("incident 1: %d %s", resp.StatusCode, body)
	}
	for path, want := range map[string]int{
		"/api/v1/incidents/2":         http.StatusNotFound,
		"/api/v1/incidents/x":         http.StatusNotFound,
		"/api/v1/incidents?open=yes":  http.StatusBadRequest,
		"/api/v1/incidents?limit=0":   http.StatusBadRequest,
		"/api/v1/incidents?state=all": http.StatusBadRequest,
	} {
		if resp, body := do(t, "GET", srv.URL+path, "", ""); resp.StatusCode != want {
			t.Errorf("GET %s: %d %s, want %d", path, resp.StatusCode, body, want)
		}
	}
}
