package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// TestLabFirstLine: the demo's first line names the dashboard at the
// address the listener was bound to (also for port 0), and it answers.
func TestLabFirstLine(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, dashboard, _ := labLines(t, ctx, "--schedule", "@every 1h")
	if strings.Contains(dashboard, ":0/") {
		t.Fatalf("dashboard URL %s names port 0, not the bound port", dashboard)
	}
	eventually(t, "the dashboard to answer", func() bool {
		resp, err := http.Get(dashboard + "healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}
