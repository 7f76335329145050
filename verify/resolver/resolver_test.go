package resolver_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/otpprobe/otpprobe/lab/dnsserver"
	"github.com/otpprobe/otpprobe/verify/resolver"
)

var world = []string{
	`example-bank.test. 300 IN TXT "v=spf1 include:spf.protection.outlook.test include:spf.backup-relay.test -all"`,
	`example-bank.test. 300 IN TXT "google-site-verification=" "abc" "def"`,
	`example-bank.test. 300 IN MX 20 backup-mx.example-bank.test.`,
	`example-bank.test. 300 IN MX 10 mx.example-bank.test.`,
	`mx.example-bank.test. 300 IN A 127.0.0.30`,
	`mx.example-bank.test. 300 IN AAAA ::1`,
	`v4only.example-bank.test. 300 IN A 127.0.0.31`,
	`_25._tcp.mx.example-bank.test. 300 IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef`,
	`nullmx.test. 300 IN MX 0 .`,
	`30.0.0.127.in-addr.arpa. 300 IN PTR mx.example-bank.test.`,
	`selector1._domainkey.example-bank.test. 300 IN CNAME selector1-example-bank-test._domainkey.examplebank.onmicrosoft.test.`,
	`selector2._domainkey.example-bank.test. 300 IN CNAME selector2-example-bank-test._domainkey.examplebank.onmicrosoft.test.`,
	`selector1-example-bank-test._domainkey.examplebank.onmicrosoft.test. 300 IN TXT "v=DKIM1; k=rsa; p=MIIB"`,
	`nodata-target.test. 300 IN CNAME mx.example-bank.test.`,
	`a.chain.test. 300 IN CNAME b.chain.test.`,
	`b.chain.test. 300 IN CNAME c.chain.test.`,
	`c.chain.test. 300 IN A 127.0.0.5`,
	`loop1.test. 300 IN CNAME loop2.test.`,
	`loop2.test. 300 IN CNAME loop1.test.`,
}

// longChain adds c0.long.test -> c1 -> ... -> c<n>.long.test (A).
func longChain(t testing.TB, s *dnsserver.Server, n int) {
	t.Helper()
	for i := range n {
		if err := s.Add(fmt.Sprintf("c%d.long.test. 300 IN CNAME c%d.long.test.", i, i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Add(fmt.Sprintf("c%d.long.test. 300 IN A 127.0.0.9", n)); err != nil {
		t.Fatal(err)
	}
}

func startWorld(t testing.TB) *dnsserver.Server {
	t.Helper()
	s, err := dnsserver.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Load(world); err != nil {
		t.Fatal(err)
	}
	return s
}

func newResolver(t testing.TB, servers ...string) *resolver.Resolver {
	t.Helper()
	r, err := resolver.New(resolver.Config{Servers: servers, Timeout: 300 * time.Millisecond, Retries: 2})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestQueryRcodes(t *testing.T) {
	s := startWorld(t)
	s.SetFault("servfail.test", dnsserver.FaultServfail)
	s.SetFault("refused.test", dnsserver.FaultRefused)
	s.SetFault("timeout.test", dnsserver.FaultTimeout)
	r := newResolver(t, s.Addr())
	tests := []struct {
		name   string
		qtype  uint16
		rcode  int
		answer int
		cnames []string
		err    bool
	}{
		{"example-bank.test", dns.TypeTXT, dns.RcodeSuccess, 2, nil, false},
		{"example-bank.test", dns.TypeA, dns.RcodeSuccess, 0, nil, false},              // NODATA
		{"_domainkey.example-bank.test", dns.TypeTXT, dns.RcodeSuccess, 0, nil, false}, // empty non-terminal
		{"nothing.example-bank.test", dns.TypeTXT, dns.RcodeNameError, 0, nil, false},
		{"servfail.test", dns.TypeTXT, dns.RcodeServerFailure, 0, nil, false},
		{"refused.test", dns.TypeTXT, dns.RcodeRefused, 0, nil, false},
		{"timeout.test", dns.TypeTXT, 0, 0, nil, true},
		{"a.chain.test", dns.TypeA, dns.RcodeSuccess, 1, []string{"b.chain.test.", "c.chain.test."}, false},
		{"selector2._domainkey.example-bank.test.", dns.TypeTXT, dns.RcodeNameError, 0,
			[]string{"selector2-example-bank-test._domainkey.examplebank.onmicrosoft.test."}, false},
		{"nodata-target.test", dns.TypeTXT, dns.RcodeSuccess, 0, []string{"mx.example-bank.test."}, false},
		{"a.chain.test", dns.TypeCNAME, dns.RcodeSuccess, 1, nil, false}, // CNAME itself is not followed
	}
	for _, tc := range tests {
		t.Run(tc.name+"/"+dns.TypeToString[tc.qtype], func(t *testing.T) {
			resp, err := r.Query(context.Background(), tc.name, tc.qtype)
			if tc.err {
				var de *net.DNSError
				if !errors.As(err, &de) || !de.IsTimeout || de.Server != s.Addr() {
					t.Fatalf("err = %#v, want a timeout *net.DNSError from %s", err, s.Addr())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.Rcode != tc.rcode || len(resp.Answer) != tc.answer || !slices.Equal(resp.CNAMEs, tc.cnames) {
				t.Errorf("got rcode %s, %d answers, chain %v; want %s, %d, %v",
					dns.RcodeToString[resp.Rcode], len(resp.Answer), resp.CNAMEs,
					dns.RcodeToString[tc.rcode], tc.answer, tc.cnames)
			}
			for _, rr := range resp.Answer {
				if rr.Header().Rrtype != tc.qtype {
					t.Errorf("answer holds %v", rr)
				}
			}
			if resp.AD {
				t.Error("AD set by a non-validating server")
			}
		})
	}
}

func TestCNAMELoops(t *testing.T) {
	s := startWorld(t)
	longChain(t, s, resolver.MaxCNAMEs)
	r := newResolver(t, s.Addr())
	resp, err := r.Query(context.Background(), "c0.long.test", dns.TypeA)
	if err != nil || len(resp.Answer) != 1 || len(resp.CNAMEs) != resolver.MaxCNAMEs {
		t.Errorf("chain of %d: %v %v", resolver.MaxCNAMEs, resp, err)
	}
	longChain(t, s, resolver.MaxCNAMEs+1)
	s.Remove("c8.long.test", dns.TypeA)
	for _, name := range []string{"loop1.test", "c0.long.test"} {
		_, err := r.Query(context.Background(), name, dns.TypeA)
		var de *net.DNSError
		if !errors.Is(err, resolver.ErrCNAMELoop) || !errors.As(err, &de) || de.Name != name+"." {
			t.Errorf("%s: err = %v, want ErrCNAMELoop in a *net.DNSError", name, err)
		}
	}
}

// TestLookupErrors checks the *net.DNSError classification SPF, DKIM and
// DMARC libraries depend on.
func TestLookupErrors(t *testing.T) {
	s := startWorld(t)
	s.SetFault("servfail.test", dnsserver.FaultServfail)
	s.SetFault("refused.test", dnsserver.FaultRefused)
	s.SetFault("timeout.test", dnsserver.FaultTimeout)
	s.SetFault("selector1-example-bank-test._domainkey.examplebank.onmicrosoft.test", dnsserver.FaultServfail)
	r := newResolver(t, s.Addr())
	ctx := context.Background()
	lookups := map[string]func(string) error{
		"TXT":   func(n string) error { _, err := r.LookupTXT(ctx, n); return err },
		"MX":    func(n string) error { _, err := r.LookupMX(ctx, n); return err },
		"IP":    func(n string) error { _, err := r.LookupIPAddr(ctx, n); return err },
		"CNAME": func(n string) error { _, err := r.LookupCNAME(ctx, n); return err },
		"TLSA":  func(n string) error { _, _, err := r.LookupTLSA(ctx, n); return err },
	}
	tests := []struct {
		lookup, name                  string
		notFound, temporary, timedOut bool
	}{
		{"TXT", "nothing.example-bank.test", true, false, false},
		{"TXT", "mx.example-bank.test", true, false, false}, // NODATA
		{"TXT", "_domainkey.example-bank.test", true, false, false},
		{"TXT", "selector2._domainkey.example-bank.test", true, false, false}, // CNAME to nothing
		{"TXT", "selector1._domainkey.example-bank.test", false, true, false}, // SERVFAIL behind CNAME
		{"TXT", "servfail.test", false, true, false},
		{"TXT", "refused.test", false, true, false},
		{"TXT", "timeout.test", false, true, true},
		{"MX", "mx.example-bank.test", true, false, false},
		{"MX", "servfail.test", false, true, false},
		{"IP", "example-bank.test", true, false, false},
		{"IP", "nothing.test", true, false, false},
		{"IP", "servfail.test", false, true, false},
		{"IP", "timeout.test", false, true, true},
		{"CNAME", "nothing.test", true, false, false},
		{"CNAME", "servfail.test", false, true, false},
		{"TLSA", "_25._tcp.nothing.test", true, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.lookup+"/"+tc.name, func(t *testing.T) {
			err := lookups[tc.lookup](tc.name)
			de, ok := err.(*net.DNSError) // libraries type-assert, so no wrapping
			if !ok {
				t.Fatalf("err = %#v, want *net.DNSError", err)
			}
			if de.IsNotFound != tc.notFound || de.Temporary() != tc.temporary || de.IsTimeout != tc.timedOut {
				t.Errorf("%v: notFound=%v temporary=%v timeout=%v, want %v %v %v",
					de, de.IsNotFound, de.Temporary(), de.IsTimeout, tc.notFound, tc.temporary, tc.timedOut)
			}
			if de.Name == "" || de.Server != s.Addr() {
				t.Errorf("Name=%q Server=%q, want both set", de.Name, de.Server)
			}
		})
	}
}

func TestLookups(t *testing.T) {
	s := startWorld(t)
	r := newResolver(t, s.Addr())
	ctx := context.Background()

	txt, err := r.LookupTXT(ctx, "example-bank.test")
	slices.Sort(txt)
	want := []string{"google-site-verification=abcdef", "v=spf1 include:spf.protection.outlook.test include:spf.backup-relay.test -all"}
	if err != nil || !slices.Equal(txt, want) {
		t.Errorf("LookupTXT = %q, %v; want %q", txt, err, want)
	}

	mx, err := r.LookupMX(ctx, "example-bank.test")
	if err != nil || len(mx) != 2 || mx[0].Host != "mx.example-bank.test." || mx[0].Pref != 10 || mx[1].Pref != 20 {
		t.Errorf("LookupMX = %v, %v", mx, err)
	}
	mx, err = r.LookupMX(ctx, "nullmx.test")
	if err != nil || len(mx) != 1 || mx[0].Host != "." || mx[0].Pref != 0 {
		t.Errorf("LookupMX(null MX) = %v, %v", mx, err)
	}

	ips, err := r.LookupIPAddr(ctx, "nodata-target.test")
	var got []string
	for _, ip := range ips {
		got = append(got, ip.IP.String())
	}
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []string{"127.0.0.30", "::1"}) {
		t.Errorf("LookupIPAddr via CNAME = %v, %v", got, err)
	}
	ips, err = r.LookupIPAddr(ctx, "v4only.example-bank.test")
	if err != nil || len(ips) != 1 {
		t.Errorf("LookupIPAddr(v4 only) = %v, %v", ips, err)
	}
	for _, lit := range []string{"127.0.0.99", "fe80::1%lo"} {
		ips, err = r.LookupIPAddr(ctx, lit)
		if err != nil || len(ips) != 1 || ips[0].String() != lit {
			t.Errorf("LookupIPAddr(%s) = %v, %v", lit, ips, err)
		}
	}

	names, err := r.LookupAddr(ctx, "127.0.0.30")
	if err != nil || !slices.Equal(names, []string{"mx.example-bank.test."}) {
		t.Errorf("LookupAddr = %v, %v", names, err)
	}
	if _, err := r.LookupAddr(ctx, "not-an-ip"); err == nil || !strings.Contains(err.Error(), "not-an-ip") {
		t.Errorf("LookupAddr(bad) = %v", err)
	}

	for host, want := range map[string]string{
		"a.chain.test":         "c.chain.test.",
		"mx.example-bank.test": "mx.example-bank.test.",
		"example-bank.test":    "example-bank.test.", // exists without A: itself
	} {
		if cn, err := r.LookupCNAME(ctx, host); err != nil || cn != want {
			t.Errorf("LookupCNAME(%s) = %q, %v; want %q", host, cn, err, want)
		}
	}

	name, _ := dns.TLSAName("mx.example-bank.test.", "25", "tcp")
	tlsa, ad, err := r.LookupTLSA(ctx, name)
	if err != nil || len(tlsa) != 1 || tlsa[0].Usage != 3 || ad {
		t.Errorf("LookupTLSA = %v, %v, %v", tlsa, ad, err)
	}
}

func TestLongTXTOverTCP(t *testing.T) {
	s := startWorld(t)
	key := "v=DKIM1; k=rsa; p=" + strings.Repeat("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A", 13)
	if err := s.Add(fmt.Sprintf(`k._domainkey.example-bank.test. 300 IN TXT "%s"`, key)); err != nil {
		t.Fatal(err)
	}
	var big []string
	for i := range 8 {
		v := fmt.Sprintf("%d%s", i, strings.Repeat("y", 240))
		big = append(big, v)
		if err := s.Add(fmt.Sprintf(`big.test. 300 IN TXT "%s"`, v)); err != nil {
			t.Fatal(err)
		}
	}
	r := newResolver(t, s.Addr())
	got, err := r.LookupTXT(context.Background(), "k._domainkey.example-bank.test")
	if err != nil || len(got) != 1 || got[0] != key {
		t.Errorf("long key: %d records, %v; want the key joined", len(got), err)
	}
	before := s.Queries()
	got, err = r.LookupTXT(context.Background(), "big.test")
	slices.Sort(got)
	if err != nil || !slices.Equal(got, big) {
		t.Errorf("big RRset: %d records, %v; want all %d", len(got), err, len(big))
	}
	if n := s.Queries() - before; n != 2 {
		t.Errorf("%d queries for a truncated answer, want 2 (UDP then TCP)", n)
	}
}

func TestContext(t *testing.T) {
	s := startWorld(t)
	s.SetFault("timeout.test", dnsserver.FaultTimeout)
	r, err := resolver.New(resolver.Config{Servers: []string{s.Addr()}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = r.LookupTXT(ctx, "timeout.test")
	var de *net.DNSError
	if !errors.Is(err, context.Canceled) || !errors.As(err, &de) || de.IsTimeout {
		t.Errorf("canceled: err = %v, want context.Canceled in a *net.DNSError", err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = r.LookupTXT(ctx, "timeout.test")
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &de) || !de.IsTimeout {
		t.Errorf("deadline: err = %v, want a timeout", err)
	}

	if _, err := r.LookupTXT(ctx, "example-bank.test"); err == nil {
		t.Error("lookup with an expired context succeeded")
	}
}

func TestNextServerOnRetry(t *testing.T) {
	s := startWorld(t)
	// A closed port: the first try fails, the retry goes to the live server.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := pc.LocalAddr().String()
	pc.Close()
	r := newResolver(t, dead, s.Addr())
	if txt, err := r.LookupTXT(context.Background(), "example-bank.test"); err != nil || len(txt) != 2 {
		t.Errorf("LookupTXT = %v, %v; want the live server's answer", txt, err)
	}

	// SERVFAIL from the first server also moves on.
	broken := startWorld(t)
	broken.SetFault("example-bank.test", dnsserver.FaultServfail)
	r = newResolver(t, broken.Addr(), s.Addr())
	if txt, err := r.LookupTXT(context.Background(), "example-bank.test"); err != nil || len(txt) != 2 {
		t.Errorf("after SERVFAIL: %v, %v; want the second server's answer", txt, err)
	}

	r, _ = resolver.New(resolver.Config{Servers: []string{dead}, Timeout: 200 * time.Millisecond, Retries: -1})
	_, err = r.LookupTXT(context.Background(), "example-bank.test")
	if de, ok := err.(*net.DNSError); !ok || !de.IsTemporary || de.IsNotFound || de.Server != dead {
		t.Errorf("dead server: %#v, want a temporary *net.DNSError", err)
	}
}

func TestNewConfig(t *testing.T) {
	for _, bad := range []resolver.Config{
		{Servers: []string{"127.0.0.1"}},
		{Servers: []string{"dns.test:53"}},
		{Servers: []string{"127.0.0.1:53"}, Timeout: -time.Second},
		{Servers: []string{"127.0.0.1:53"}, UDPSize: 100},
	} {
		if _, err := resolver.New(bad); err == nil || !strings.HasPrefix(err.Error(), "resolver: ") {
			t.Errorf("New(%+v) error = %v", bad, err)
		}
	}
	r, err := resolver.New(resolver.Config{Servers: []string{"127.0.0.1:53", "[::1]:53"}})
	if err != nil || len(r.Servers()) != 2 {
		t.Errorf("New = %v, %v", r, err)
	}
	if _, err := r.Query(context.Background(), "bad..name", dns.TypeA); err == nil {
		t.Error("Query(bad..name) succeeded")
	}
}

func TestConcurrentEditsWhileQuerying(t *testing.T) {
	s := startWorld(t)
	r := newResolver(t, s.Addr())
	// The readers expect the writer's records from the first query on.
	if err := s.Set("example-bank.test", dns.TypeTXT, `example-bank.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var writer sync.WaitGroup
	writer.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s.Set("example-bank.test", dns.TypeTXT, fmt.Sprintf(`example-bank.test. 300 IN TXT "v=spf1 ip4:127.0.0.%d -all"`, i%250))
			if i%2 == 0 {
				s.SetFault("c.chain.test", dnsserver.FaultServfail)
			} else {
				s.ClearFaults()
			}
		}
	})
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for range 50 {
				txt, err := r.LookupTXT(context.Background(), "example-bank.test")
				if err != nil || len(txt) != 1 || !strings.HasPrefix(txt[0], "v=spf1 ip4:127.0.0.") {
					t.Errorf("LookupTXT during edits = %q, %v", txt, err)
					return
				}
				if _, err := r.LookupIPAddr(context.Background(), "a.chain.test"); err != nil {
					if de, ok := err.(*net.DNSError); !ok || !de.IsTemporary {
						t.Errorf("LookupIPAddr during faults = %v", err)
						return
					}
				}
			}
		})
	}
	readers.Wait()
	close(stop)
	writer.Wait()
}

func BenchmarkLookupTXT(b *testing.B) {
	s := startWorld(b)
	r := newResolver(b, s.Addr())
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := r.LookupTXT(ctx, "selector1._domainkey.example-bank.test"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
}
