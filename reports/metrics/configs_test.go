package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"gopkg.in/yaml.v3"
)

// metricRef finds otpprobe metric and recording-rule names in PromQL.
var metricRef = regexp.MustCompile(`\botpprobe[_:][a-zA-Z0-9_:]*`)

const (
	rulesFile     = "../../configs/prometheus/otpprobe.rules.yml"
	dashboardFile = "../../configs/grafana/otpprobe-dashboard.json"
)

// exposed returns every series name otpprobe exposes (histograms with
// their _bucket, _sum and _count).
func exposed(t *testing.T) map[string]bool {
	m := New("eu-1")
	r := NewReports(m)
	for _, a := range sequence() {
		m.ObserveAttempt(a)
	}
	m.SkippedRun("otp")
	m.SetWatcherUp("gmail-seed", "INBOX", true)
	m.SetRoute("otp", "m365", "primary")
	m.Failover("otp", "m365", "backup")
	m.DNSChanged("m365", "spf")
	m.SetDNSFindings("m365", map[string]int{"critical": 1})
	r.InitNotifier("webhook:ops")
	r.SetSLO("otp-inbox", 0.995, 1, 1, map[string]float64{"5m": 0})
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[mf.GetName()+s] = true
			}
		}
	}
	return names
}

type ruleFile struct {
	Groups []struct {
		Rules []struct {
			Record string `yaml:"record"`
			Alert  string `yaml:"alert"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadRules(t *testing.T) ruleFile {
	data, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(data, &rf); err != nil {
		t.Fatal(err)
	}
	return rf
}

// TestRulesUseExposedMetrics: every metric the Prometheus rules read is
// one otpprobe exposes or a recording rule defined before it is used.
func TestRulesUseExposedMetrics(t *testing.T) {
	known := exposed(t)
	rf := loadRules(t)
	n := 0
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			n++
			for _, ref := range metricRef.FindAllString(r.Expr, -1) {
				if !known[ref] {
					t.Errorf("rule %s%s uses %s, which is neither exposed nor recorded earlier", r.Record, r.Alert, ref)
				}
			}
			if r.Record != "" {
				known[r.Record] = true
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d rules in %s", n, rulesFile)
	}
}

// TestDashboardUsesExistingMetrics: every query of the Grafana dashboard
// names only exposed metrics and recording rules.
func TestDashboardUsesExistingMetrics(t *testing.T) {
	known := exposed(t)
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				known[r.Record] = true
			}
		}
	}
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var queries []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "query") {
					queries = append(queries, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(dash)
	refs := 0
	for _, q := range queries {
		for _, ref := range metricRef.FindAllString(q, -1) {
			refs++
			if !known[ref] {
				t.Errorf("dashboard query %q uses %s, which does not exist", q, ref)
			}
		}
	}
	if refs < 20 {
		t.Fatalf("the dashboard names only %d metrics in %d queries", refs, len(queries))
	}
}
