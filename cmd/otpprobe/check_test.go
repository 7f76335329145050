package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/lab"
)

type checkOutput struct {
	Domains []struct {
		Domain   string
		Findings []struct{ Severity, Code, Name, Data, Message string }
		Changes  []struct{ Against, Name, Type string }
		Checked  []struct{ Kind, Value, From string }
	}
}

func checkDNS(t *testing.T, ctx context.Context, wantCode int, args ...string) checkOutput {
	t.Helper()
	code, out, errOut := run(t, ctx, append([]string{"check", "dns", "--format", "json"}, args...)...)
	if code != wantCode {
		t.Fatalf("check dns %v: exit %d, want %d\n%s\n%s", args, code, wantCode, out, errOut)
	}
	var res checkOutput
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("check JSON: %v\n%s", err, out)
	}
	return res
}

// TestCheckDNS runs 'check dns' against the lab world's DNS: clean when
// healthy, the incident's critical finding otherwise, and with a config,
// changes against the previous check and the pinned baseline.
func TestCheckDNS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	w, err := lab.Start(ctx, lab.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ep := w.Endpoints()
	flags := []string{"--resolver", ep.DNS, "--domain", lab.CustomerDomain, "--selector", lab.M365ActiveSelector, "--selector", lab.BackupSelector}

	res := checkDNS(t, ctx, exitOK, flags...)
	if len(res.Domains) != 1 || res.Domains[0].Domain != lab.CustomerDomain {
		t.Fatalf("domains = %+v", res.Domains)
	}
	for _, f := range res.Domains[0].Findings {
		if f.Severity == "error" || f.Severity == "critical" {
			t.Errorf("healthy world: %+v", f)
		}
	}
	for _, tc := range []struct{ scenario, code, name string }{
		{"m365-spf-include-servfail", "spf.include_tempfail", lab.M365SPFInclude + "."},
		{"m365-dkim-txt-missing", "dkim.cname_dangling", "selector1._domainkey." + lab.CustomerDomain + "."},
		{"m365-dns-records-removed", "dkim.key_missing", "selector1._domainkey." + lab.CustomerDomain + "."},
		{"dmarc-record-removed", "dmarc.missing", "_dmarc." + lab.CustomerDomain + "."},
		{"spf-too-many-lookups", "spf.too_many_lookups", lab.CustomerDomain + "."},
	} {
		if err := w.Reset(); err != nil {
			t.Fatal(err)
		}
		if err := w.Apply(tc.scenario); err != nil {
			t.Fatal(err)
		}
		res := checkDNS(t, ctx, exitFailed, flags...)
		f := res.Domains[0].Findings
		if len(f) == 0 || f[0].Severity != "critical" || f[0].Code != tc.code || f[0].Name != tc.name {
			t.Errorf("%s: first finding %+v, want critical %s at %s", tc.scenario, f, tc.code, tc.name)
		}
	}

	// With the lab's config: its dns_checks resolver, its store for the
	// baseline; changes show against the previous check and the baseline.
	if err := w.Reset(); err != nil {
		t.Fatal(err)
	}
	cfg, err := ep.WriteConfig(lab.ConfigOptions{Dir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	checkDNS(t, ctx, exitOK, "--config", cfg, "--pin")
	if err := w.Apply("dmarc-record-removed"); err != nil {
		t.Fatal(err)
	}
	res = checkDNS(t, ctx, exitFailed, "--config", cfg)
	var against []string
	for _, c := range res.Domains[0].Changes {
		if c.Name == "_dmarc."+lab.CustomerDomain+"." {
			against = append(against, c.Against)
		}
	}
	if strings.Join(against, ",") != "previous,baseline" {
		t.Errorf("changes = %+v, want the _dmarc record against previous and baseline", res.Domains[0].Changes)
	}
	if res = checkDNS(t, ctx, exitFailed, "--config", cfg); len(res.Domains[0].Changes) != 1 || res.Domains[0].Changes[0].Against != "baseline" {
		t.Errorf("second check: changes %+v, want only the baseline difference", res.Domains[0].Changes)
	}

	// After a round of canaries, the selectors that signed them and the
	// relays that delivered them are read back from the store and checked.
	if err := w.Reset(); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := run(t, ctx, "once", "--config", cfg, "--format", "json"); code != exitOK {
		t.Fatalf("once: exit %d\n%s\n%s", code, out, errOut)
	}
	res = checkDNS(t, ctx, exitOK, "--config", cfg)
	checked := map[string]string{}
	for _, c := range res.Domains[0].Checked {
		checked[c.Kind+" "+c.Value] = c.From
	}
	for key, from := range map[string]string{
		"dkim_selector " + lab.M365ActiveSelector: "canaries of " + lab.SenderM365,
		"dkim_selector " + lab.BackupSelector:     "canaries of " + lab.SenderBackup,
		"spf_source_ip " + lab.M365IP:             "canaries of " + lab.SenderM365,
		"spf_source_ip " + lab.BackupIP:           "canaries of " + lab.SenderBackup,
	} {
		if checked[key] != from {
			t.Errorf("checked %s from %q, want %q (all: %v)", key, checked[key], from, checked)
		}
	}
	code, out, _ := run(t, ctx, "check", "dns", "--config", cfg)
	if code != exitOK || !strings.Contains(out, "DKIM selector "+lab.M365ActiveSelector) || !strings.Contains(out, "SPF for "+lab.M365IP) || !strings.Contains(out, "canaries of "+lab.SenderM365+", last ") {
		t.Errorf("table after a round: exit %d\n%s", code, out)
	}

	// Table output: severity first, no colour outside a terminal.
	if err := w.Reset(); err != nil {
		t.Fatal(err)
	}
	code, out, _ = run(t, ctx, append([]string{"check", "dns"}, flags...)...)
	if code != exitOK || !strings.Contains(out, lab.CustomerDomain+": ok") || strings.Contains(out, "\x1b[") {
		t.Errorf("table: exit %d\n%s", code, out)
	}
}

func TestCheckDNSUsage(t *testing.T) {
	for _, args := range [][]string{
		{"check"},
		{"check", "mx"},
		{"check", "dns"},
		{"check", "dns", "--domain", "example.com", "--format", "xml"},
		{"check", "dns", "--domain", "example.com", "--pin"},
		{"check", "dns", "--domain", "not a domain", "--resolver", "127.0.0.1:1"},
		{"check", "dns", "--domain", "example.com", "--resolver", "dns.example.com"},
	} {
		code, _, errOut := run(t, context.Background(), args...)
		if code != exitUsage || strings.Count(strings.TrimSpace(errOut), "\n") > 0 && !strings.Contains(errOut, "Usage") {
			t.Errorf("%v: exit %d, stderr %q; want a one-line usage error", args, code, errOut)
		}
	}
}
