package metrics

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

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
	m.SetWatcher("gmail-seed", "INBOX", true, time.Time{})
	m.SetWatcherLoginRefused("gmail-seed", "INBOX", false)
	m.InitKnown(Known{Probes: []KnownProbe{{Name: "otp", Senders: []string{"m365"}, Providers: []string{"gmail"}, Interval: time.Minute, Deadline: 10 * time.Minute}}}, time.Now())
	m.SetConfigReload(true, time.Now())
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

// TestPromtoolTestsUseExposedSeries: the series the promtool unit tests
// feed the rules are otpprobe's real ones, with exactly the labels
// otpprobe puts on them, so a rule test cannot pass on a name or a label
// the prober never exports.
func TestPromtoolTestsUseExposedSeries(t *testing.T) {
	m := New("eu-1")
	for _, a := range sequence() {
		m.ObserveAttempt(a)
	}
	m.SkippedRun("otp")
	m.SetWatcher("gmail-seed", "INBOX", true, time.Now())
	m.SetWatcherLoginRefused("gmail-seed", "INBOX", false)
	m.WatcherLoginFailed("gmail-seed", "INBOX", "auth")
	m.SetRoute("otp", "m365", "primary")
	m.Failover("otp", "m365", "backup")
	m.DNSChanged("m365", "spf")
	m.SetDNSFindings("m365", map[string]int{"critical": 1})
	m.InitKnown(Known{Probes: []KnownProbe{{Name: "otp", Senders: []string{"m365"}, Providers: []string{"gmail"}, Interval: time.Minute, Deadline: 10 * time.Minute}}}, time.Now())
	m.SetConfigReload(true, time.Now())
	r := NewReports(m)
	r.InitNotifier("webhook:ops")
	r.SetSLO("otp-inbox", 0.995, 1, 1, map[string]float64{"5m": 0})
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string][]string{} // series name → sorted label names
	for _, mf := range mfs {
		var names []string
		for _, lp := range mf.GetMetric()[0].GetLabel() {
			names = append(names, lp.GetName())
		}
		slices.Sort(names)
		labels[mf.GetName()] = names
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			labels[mf.GetName()+"_bucket"] = slices.Sorted(slices.Values(append(slices.Clone(names), "le")))
			labels[mf.GetName()+"_sum"], labels[mf.GetName()+"_count"] = names, names
		}
	}
	files, err := filepath.Glob("../../configs/prometheus/tests/*.test.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no promtool tests (%v)", err)
	}
	series := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\}$`)
	label := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var tf struct {
			Tests []struct {
				Name        string `yaml:"name"`
				InputSeries []struct {
					Series string `yaml:"series"`
				} `yaml:"input_series"`
			} `yaml:"tests"`
		}
		if err := yaml.Unmarshal(data, &tf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, tc := range tf.Tests {
			for _, in := range tc.InputSeries {
				mt := series.FindStringSubmatch(in.Series)
				if mt == nil || !strings.HasPrefix(mt[1], "otpprobe_") {
					continue
				}
				n++
				want, ok := labels[mt[1]]
				if !ok {
					t.Errorf("%s: test %q feeds %s, which otpprobe does not expose", f, tc.Name, mt[1])
					continue
				}
				var got []string
				for _, l := range label.FindAllStringSubmatch(mt[2], -1) {
					if l[1] != "job" && l[1] != "instance" { // the target's, added by Prometheus
						got = append(got, l[1])
					}
				}
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Errorf("%s: test %q feeds %s with labels %v; otpprobe exports %v", f, tc.Name, mt[1], got, want)
				}
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d otpprobe input series found", n)
	}
}
