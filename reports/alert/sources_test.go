package alert_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/otpprobe/otpprobe/reports/alert"
)

// TestAlertSources: every alert has exactly one source — a Prometheus rule
// in configs/prometheus or the prober's own notifier (alert.Names) — so
// one problem pages once, and every alert of either list links its own
// section of docs/runbook.md.
func TestAlertSources(t *testing.T) {
	files, err := filepath.Glob("../../configs/prometheus/*.rules.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files: %v", err)
	}
	rules := map[string]string{} // alert → runbook_url (the last rule of that name)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Groups []struct {
				Rules []struct {
					Alert       string            `yaml:"alert"`
					Annotations map[string]string `yaml:"annotations"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range doc.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				rules[r.Alert] = r.Annotations["runbook_url"]
				if r.Annotations["runbook_url"] != alert.RunbookURL(r.Alert) {
					t.Errorf("%s: rule %s has runbook_url %q, want %q", filepath.Base(f), r.Alert, r.Annotations["runbook_url"], alert.RunbookURL(r.Alert))
				}
			}
		}
	}
	runbook, err := os.ReadFile("../../docs/runbook.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^## (OTP[A-Za-z]+)\s*$`).FindAllStringSubmatch(string(runbook), -1) {
		sections[m[1]] = true
	}
	var table []string
	for _, name := range alert.Names {
		if _, dup := rules[name]; dup {
			t.Errorf("%s is sent by the prober and is also a Prometheus rule: it would page twice", name)
		}
		table = append(table, name+"\tprober notifier (alerts.alertmanagers / webhooks)")
	}
	for name := range rules {
		table = append(table, name+"\tPrometheus rule (configs/prometheus)")
	}
	sort.Strings(table)
	for _, row := range table {
		name, _, _ := strings.Cut(row, "\t")
		if !sections[name] {
			t.Errorf("docs/runbook.md has no section \"## %s\"", name)
		}
		t.Log(row)
	}
	for s := range sections {
		if _, ok := rules[s]; !ok && !slices.Contains(alert.Names, s) {
			t.Errorf("docs/runbook.md documents %s, which no rule or notifier sends", s)
		}
	}
}
