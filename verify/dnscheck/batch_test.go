package dnscheck

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/lab/dnsserver"
	"github.com/otpprobe/otpprobe/verify/resolver"
)

// fleet publishes n customer domains shaped like the lab customer (SPF via
// two shared includes, DMARC, an M365 selector pair, a relay selector, MX);
// every tenth has its DMARC record missing.
func fleet(t testing.TB, n int) (*resolver.Resolver, []Domain) {
	t.Helper()
	s, err := dnsserver.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	key := rsaKeyTXT(t, 2048, "")
	rrs := []string{
		txt("spf.protection.outlook.test", "v=spf1 ip4:127.0.0.11 -all"),
		txt("spf.backup-relay.test", "v=spf1 ip4:127.0.0.12 -all"),
	}
	var domains []Domain
	for i := range n {
		d := fmt.Sprintf("customer%d.test", i)
		tenant := fmt.Sprintf("customer%d.onmicrosoft.test", i)
		target := "selector1-" + strings.ReplaceAll(d, ".", "-") + "._domainkey." + tenant
		rrs = append(rrs,
			txt(d, "v=spf1 include:spf.protection.outlook.test include:spf.backup-relay.test -all"),
			fmt.Sprintf("selector1._domainkey.%s. 300 IN CNAME %s.", d, target),
			fmt.Sprintf("selector2._domainkey.%s. 300 IN CNAME selector2-%s._domainkey.%s.", d, strings.ReplaceAll(d, ".", "-"), tenant),
			txt(target, key),
			txt("relay2026._domainkey."+d, key),
			fmt.Sprintf("%s. 300 IN MX 10 mx.%s.", d, d),
			fmt.Sprintf("mx.%s. 300 IN A 127.0.0.30", d),
		)
		if i%10 != 0 {
			rrs = append(rrs, txt("_dmarc."+d, "v=DMARC1; p=reject; rua=mailto:dmarc@"+d))
		}
		domains = append(domains, Domain{Name: d, Selectors: []Selector{{Name: "selector1", Active: true}, {Name: "selector2"}, {Name: "relay2026"}}})
	}
	if err := s.Load(rrs); err != nil {
		t.Fatal(err)
	}
	r, err := resolver.New(resolver.Config{Servers: []string{s.Addr()}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return r, domains
}

func TestCheckDomains(t *testing.T) {
	r, domains := fleet(t, 40)
	seen := map[string]bool{}
	missing := 0
	CheckDomains(context.Background(), r, domains, 8, func(rep Report) {
		seen[rep.Domain] = true // fn is serialised: no lock needed (-race checks)
		if len(rep.Has("dmarc.missing")) == 1 {
			missing++
		}
		if rep.Worst() == SeverityError {
			t.Errorf("%s: unexpected findings:\n%s", rep.Domain, dump(rep))
		}
	})
	if len(seen) != 40 || missing != 4 {
		t.Errorf("checked %d domains, %d without DMARC; want 40 and 4", len(seen), missing)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n := 0
	CheckDomains(ctx, r, domains, 4, func(Report) { n++ })
	if n == len(domains) {
		t.Error("a cancelled batch checked every domain")
	}
}

// BenchmarkCheckDomains audits a fleet of domains (BENCH_DOMAINS, default
// 2000) served by the lab DNS server with 64 workers, reporting domains/s
// and the process's peak RSS.
func BenchmarkCheckDomains(b *testing.B) {
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("BENCH_DOMAINS")); err == nil && v > 0 {
		n = v
	}
	r, domains := fleet(b, n)
	b.ResetTimer()
	for b.Loop() {
		CheckDomains(context.Background(), r, domains, 64, func(Report) {})
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "domains/s")
	b.ReportMetric(peakRSSMB(), "peak-RSS-MB")
}

// peakRSSMB reads VmHWM from /proc (Linux); 0 elsewhere.
func peakRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}
