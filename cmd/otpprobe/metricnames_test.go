package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/lab"
)

// configMetricNames is every otpprobe_* series the shipped Prometheus
// configs and Grafana dashboards name (recording rules, otpprobe:*, are
// not exposed by the prober), mapped to the family /metrics exposes.
func configMetricNames(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{"../../configs/prometheus/*.yml", "../../configs/prometheus/*/*.yml", "../../configs/grafana/*.json", "../../configs/grafana/*/*/*"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	ref := regexp.MustCompile(`\botpprobe_[a-z0-9_]+`)
	seen := map[string]bool{}
	for _, f := range files {
		if strings.Contains(f, "/tests/") { // the promtool tests' input series
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range ref.FindAllString(string(data), -1) {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if strings.HasSuffix(name, "_seconds"+suffix) {
					name = strings.TrimSuffix(name, suffix)
				}
			}
			seen[name] = true
		}
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	if len(out) < 15 {
		t.Fatalf("only %d metric names found in configs/: %v", len(out), out)
	}
	return out
}

// TestConfigMetricsExistFromStart runs the lab daemon with an hourly
// probe (so nothing has happened yet) and an Alertmanager, and checks
// that every metric the shipped rules and dashboard use is already on
// /metrics: increase() and absent()-free alerts need a series before the
// first event.
func TestConfigMetricsExistFromStart(t *testing.T) {
	names := configMetricNames(t)
	w, err := lab.Start(context.Background(), lab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	am := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer am.Close()
	dir := t.TempDir()
	cfgPath, err := w.Endpoints().WriteConfig(lab.ConfigOptions{Dir: dir, Schedule: "@every 1h", Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("alerts:\n  alertmanagers:\n    - {name: am, url: \"" + am.URL + "\"}\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()

	d := startDaemon(t, context.Background(), cfgPath, daemonOptions{})
	var missing []string
	// The first SLO evaluation and DNS check run at start: wait for them
	// (generously: the machine may be loaded), then say what is missing.
	present := func() bool {
		body := d.Metrics()
		missing = missing[:0]
		for _, n := range names {
			if !regexp.MustCompile(`(?m)^` + n + `(_bucket|_sum|_count)?\{`).MatchString(body) {
				missing = append(missing, n)
			}
		}
		return len(missing) == 0
	}
	if !pollUntil(time.Minute, present) {
		t.Errorf("on /metrics before any attempt finished, named in configs/ but missing: %s", strings.Join(missing, ", "))
	}
	t.Logf("checked %d metric names: %s", len(names), strings.Join(names, ", "))
}
