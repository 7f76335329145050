package dnsserver

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

var world = []string{
	`example-bank.test. 300 IN TXT "v=spf1 include:spf.protection.outlook.test -all"`,
	`example-bank.test. 300 IN MX 10 mx.example-bank.test.`,
	`mx.example-bank.test. 300 IN A 127.0.0.30`,
	`selector1._domainkey.example-bank.test. 300 IN CNAME selector1-example-bank-test._domainkey.examplebank.onmicrosoft.test.`,
	`selector2._domainkey.example-bank.test. 300 IN CNAME selector2-example-bank-test._domainkey.examplebank.onmicrosoft.test.`,
	`selector1-example-bank-test._domainkey.examplebank.onmicrosoft.test. 300 IN TXT "v=DKIM1; k=rsa; p=MIIB"`,
	`a.chain.test. 300 IN CNAME b.chain.test.`,
	`b.chain.test. 300 IN CNAME c.chain.test.`,
	`c.chain.test. 300 IN A 127.0.0.5`,
	`loop1.test. 300 IN CNAME loop2.test.`,
	`loop2.test. 300 IN CNAME loop1.test.`,
	`nodata-target.test. 300 IN CNAME mx.example-bank.test.`,
}

func startWorld(t testing.TB) *Server {
	t.Helper()
	s, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Load(world); err != nil {
		t.Fatal(err)
	}
	return s
}

// ask sends one query over net ("udp" or "tcp") with EDNS0 when size > 0.
func ask(t testing.TB, s *Server, network, name string, qtype uint16, size uint16) (*dns.Msg, error) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if size > 0 {
		m.SetEdns0(size, true)
	}
	c := &dns.Client{Net: network, Timeout: 300 * time.Millisecond}
	in, _, err := c.Exchange(m, s.Addr())
	return in, err
}

func types(rrs []dns.RR) string {
	var out []string
	for _, rr := range rrs {
		out = append(out, dns.TypeToString[rr.Header().Rrtype])
	}
	return strings.Join(out, ",")
}

func TestAnswers(t *testing.T) {
	s := startWorld(t)
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		answer string // types in order
		soa    bool   // SOA in authority
	}{
		{"txt", "example-bank.test.", dns.TypeTXT, dns.RcodeSuccess, "TXT", false},
		{"case-insensitive", "EXAMPLE-Bank.Test.", dns.TypeMX, dns.RcodeSuccess, "MX", false},
		{"nodata", "example-bank.test.", dns.TypeA, dns.RcodeSuccess, "", true},
		{"empty non-terminal", "_domainkey.example-bank.test.", dns.TypeTXT, dns.RcodeSuccess, "", true},
		{"ent two levels up", "examplebank.onmicrosoft.test.", dns.TypeA, dns.RcodeSuccess, "", true},
		{"nxdomain", "nothing.example-bank.test.", dns.TypeTXT, dns.RcodeNameError, "", true},
		{"nxdomain below a leaf", "x.mx.example-bank.test.", dns.TypeA, dns.RcodeNameError, "", true},
		{"cname to txt", "selector1._domainkey.example-bank.test.", dns.TypeTXT, dns.RcodeSuccess, "CNAME,TXT", false},
		{"cname to missing", "selector2._domainkey.example-bank.test.", dns.TypeTXT, dns.RcodeNameError, "CNAME", true},
		{"cname to nodata", "nodata-target.test.", dns.TypeTXT, dns.RcodeSuccess, "CNAME", true},
		{"cname query", "selector1._domainkey.example-bank.test.", dns.TypeCNAME, dns.RcodeSuccess, "CNAME", false},
		{"chain", "a.chain.test.", dns.TypeA, dns.RcodeSuccess, "CNAME,CNAME,A", false},
		{"loop", "loop1.test.", dns.TypeA, dns.RcodeSuccess, "CNAME,CNAME", false},
		{"any", "example-bank.test.", dns.TypeANY, dns.RcodeSuccess, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, err := ask(t, s, "udp", tc.qname, tc.qtype, 1232)
			if err != nil {
				t.Fatal(err)
			}
			if in.Rcode != tc.rcode {
				t.Errorf("rcode = %s, want %s", dns.RcodeToString[in.Rcode], dns.RcodeToString[tc.rcode])
			}
			if !in.Authoritative {
				t.Error("AA bit not set")
			}
			got := types(in.Answer)
			if tc.qtype == dns.TypeANY {
				if len(in.Answer) != 2 {
					t.Errorf("ANY answer = %s, want TXT and MX", got)
				}
			} else if got != tc.answer {
				t.Errorf("answer = %q, want %q", got, tc.answer)
			}
			hasSOA := len(in.Ns) == 1 && in.Ns[0].Header().Rrtype == dns.TypeSOA
			if hasSOA != tc.soa {
				t.Errorf("SOA in authority = %v, want %v (ns %v)", hasSOA, tc.soa, in.Ns)
			}
			if in.Question[0].Name != tc.qname {
				t.Errorf("question = %q", in.Question[0].Name)
			}
		})
	}
}

func TestNegativeSOAFromZone(t *testing.T) {
	s := startWorld(t)
	if err := s.Add(`example-bank.test. 300 IN SOA ns1.example-bank.test. hostmaster.example-bank.test. 7 3600 600 86400 120`); err != nil {
		t.Fatal(err)
	}
	in, err := ask(t, s, "udp", "nothing.example-bank.test.", dns.TypeA, 0)
	if err != nil {
		t.Fatal(err)
	}
	soa, ok := in.Ns[0].(*dns.SOA)
	if !ok || soa.Hdr.Name != "example-bank.test." || soa.Serial != 7 {
		t.Errorf("authority = %v, want the zone's own SOA", in.Ns)
	}
	in, _ = ask(t, s, "udp", "nothing.other.test.", dns.TypeA, 0)
	if soa, ok := in.Ns[0].(*dns.SOA); !ok || soa.Hdr.Name != "test." {
		t.Errorf("authority = %v, want a synthesized test. SOA", in.Ns)
	}
}

func TestFaults(t *testing.T) {
	const key = "selector1-example-bank-test._domainkey.examplebank.onmicrosoft.test"
	tests := []struct {
		name  string
		fault string // fault set on `on`
		on    string
		query string
		rcode int // -1: no answer expected
	}{
		{"servfail", "servfail", "example-bank.test", "example-bank.test.", dns.RcodeServerFailure},
		{"nxdomain", "nxdomain", "Example-Bank.test.", "example-bank.test.", dns.RcodeNameError},
		{"refused", "refused", "example-bank.test.", "example-bank.test.", dns.RcodeRefused},
		{"timeout", "timeout", "example-bank.test", "example-bank.test.", -1},
		{"other name unaffected", "servfail", "mx.example-bank.test", "example-bank.test.", dns.RcodeSuccess},
		{"through cname chain", "servfail", key, "selector1._domainkey.example-bank.test.", dns.RcodeServerFailure},
		{"nxdomain through chain", "nxdomain", key, "selector1._domainkey.example-bank.test.", dns.RcodeNameError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := startWorld(t)
			f, err := ParseFault(tc.fault)
			if err != nil {
				t.Fatal(err)
			}
			s.SetFault(tc.on, f)
			for _, network := range []string{"udp", "tcp"} {
				in, err := ask(t, s, network, tc.query, dns.TypeTXT, 1232)
				if tc.rcode == -1 {
					if err == nil {
						t.Errorf("%s: got an answer %v, want none", network, in)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", network, err)
				}
				if in.Rcode != tc.rcode {
					t.Errorf("%s: rcode = %s, want %s", network, dns.RcodeToString[in.Rcode], dns.RcodeToString[tc.rcode])
				}
			}
			s.ClearFaults()
			in, err := ask(t, s, "udp", tc.query, dns.TypeTXT, 1232)
			if err != nil || in.Rcode != dns.RcodeSuccess {
				t.Errorf("after ClearFaults: %v %v", in, err)
			}
		})
	}
}

func TestParseFault(t *testing.T) {
	for _, f := range []Fault{FaultNone, FaultServfail, FaultNXDomain, FaultTimeout, FaultRefused} {
		got, err := ParseFault(strings.ToUpper(f.String()))
		if err != nil || got != f {
			t.Errorf("ParseFault(%q) = %v, %v", f.String(), got, err)
		}
	}
	if _, err := ParseFault("slow"); err == nil || !strings.Contains(err.Error(), `"slow"`) {
		t.Errorf("ParseFault(slow) error = %v, want one naming the input", err)
	}
}

func TestLongTXT(t *testing.T) {
	s := startWorld(t)
	key := "v=DKIM1; k=rsa; p=" + strings.Repeat("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A", 13) // 2048-bit sized
	if err := s.Add(fmt.Sprintf(`k._domainkey.example-bank.test. 300 IN TXT "%s"`, key)); err != nil {
		t.Fatal(err)
	}
	in, err := ask(t, s, "udp", "k._domainkey.example-bank.test.", dns.TypeTXT, 1232)
	if err != nil {
		t.Fatal(err)
	}
	txt := in.Answer[0].(*dns.TXT).Txt
	if len(txt) < 2 {
		t.Fatalf("TXT has %d strings, want the %d-byte key split", len(txt), len(key))
	}
	for _, part := range txt {
		if len(part) > 255 {
			t.Errorf("character-string of %d bytes", len(part))
		}
	}
	if strings.Join(txt, "") != key {
		t.Error("joined strings differ from the key")
	}
	if got := splitTXT([]string{strings.Repeat("a", 600)}); len(got) != 3 || len(got[2]) != 90 {
		t.Errorf("splitTXT(600 bytes) = %d parts", len(got))
	}
}

func TestTruncation(t *testing.T) {
	s := startWorld(t)
	var rrs []string
	for i := range 6 {
		rrs = append(rrs, fmt.Sprintf(`big.test. 300 IN TXT "%d%s"`, i, strings.Repeat("x", 240)))
	}
	if err := s.Set("big.test", dns.TypeTXT, rrs...); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		network string
		size    uint16
		tc      bool
	}{
		{"udp", 0, true},     // 512-byte limit
		{"udp", 4096, true},  // capped at 1232 whatever the client says
		{"udp", 1232, true},  // > 1232 bytes of answer
		{"tcp", 0, false},    // TCP is never truncated
		{"tcp", 1232, false}, // with EDNS too
	} {
		in, err := ask(t, s, tc.network, "big.test.", dns.TypeTXT, tc.size)
		if err != nil {
			t.Fatal(err)
		}
		if in.Truncated != tc.tc {
			t.Errorf("%s size %d: TC = %v, want %v", tc.network, tc.size, in.Truncated, tc.tc)
		}
		if !tc.tc && len(in.Answer) != 6 {
			t.Errorf("%s: %d answers, want 6", tc.network, len(in.Answer))
		}
	}
}

func TestEDNSEcho(t *testing.T) {
	s := startWorld(t)
	in, err := ask(t, s, "udp", "example-bank.test.", dns.TypeTXT, 4096)
	if err != nil {
		t.Fatal(err)
	}
	opt := in.IsEdns0()
	if opt == nil || !opt.Do() || opt.UDPSize() != maxUDPSize {
		t.Errorf("OPT = %v, want DO echoed and size %d", opt, maxUDPSize)
	}
	in, err = ask(t, s, "udp", "example-bank.test.", dns.TypeTXT, 0)
	if err != nil {
		t.Fatal(err)
	}
	if in.IsEdns0() != nil {
		t.Error("OPT in the answer to a query without EDNS0")
	}
}

func TestMalformedQueries(t *testing.T) {
	s := startWorld(t)
	// Garbage over UDP and TCP must not stop the server.
	for _, network := range []string{"udp", "tcp"} {
		c, err := net.Dial(network, s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("\x00\x05hello garbage that is not DNS"))
		c.Close()
	}
	m := new(dns.Msg)
	m.SetQuestion("example-bank.test.", dns.TypeTXT)
	m.Question = append(m.Question, m.Question[0])
	in, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, s.Addr())
	if err != nil || in.Rcode != dns.RcodeFormatError {
		t.Errorf("two questions: %v %v, want FORMERR", in, err)
	}
	m = new(dns.Msg)
	m.SetNotify("example-bank.test.")
	in, _, err = (&dns.Client{Timeout: time.Second}).Exchange(m, s.Addr())
	if err != nil || in.Rcode != dns.RcodeNotImplemented {
		t.Errorf("NOTIFY: %v %v, want NOTIMP", in, err)
	}
	if in, err := ask(t, s, "udp", "example-bank.test.", dns.TypeTXT, 0); err != nil || len(in.Answer) != 1 {
		t.Errorf("server broken after bad input: %v %v", in, err)
	}
}

func TestEdits(t *testing.T) {
	s := startWorld(t)
	if err := s.Add(`example-bank.test. 300 IN TXT "second"`); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(`example-bank.test. 300 IN TXT "second"`); err != nil {
		t.Fatal(err)
	}
	in, _ := ask(t, s, "udp", "example-bank.test.", dns.TypeTXT, 0)
	if len(in.Answer) != 2 {
		t.Errorf("after Add twice: %d TXT, want 2 (duplicates ignored)", len(in.Answer))
	}
	if err := s.Set("example-bank.test.", dns.TypeTXT, `example-bank.test. 60 IN TXT "v=spf1 -all"`); err != nil {
		t.Fatal(err)
	}
	in, _ = ask(t, s, "udp", "example-bank.test.", dns.TypeTXT, 0)
	if len(in.Answer) != 1 || in.Answer[0].(*dns.TXT).Txt[0] != "v=spf1 -all" {
		t.Errorf("after Set: %v", in.Answer)
	}
	if err := s.Set("example-bank.test", dns.TypeTXT); err != nil {
		t.Fatal(err)
	}
	in, _ = ask(t, s, "udp", "example-bank.test.", dns.TypeTXT, 0)
	if in.Rcode != dns.RcodeSuccess || len(in.Answer) != 0 {
		t.Errorf("after Set empty: %s %v, want NODATA (MX remains)", dns.RcodeToString[in.Rcode], in.Answer)
	}
	s.Remove("example-bank.test", dns.TypeANY)
	in, _ = ask(t, s, "udp", "example-bank.test.", dns.TypeMX, 0)
	if in.Rcode != dns.RcodeSuccess {
		t.Errorf("after Remove ANY: %s, want NOERROR (descendants remain)", dns.RcodeToString[in.Rcode])
	}
	s.Remove("mx.example-bank.test.", dns.TypeA)
	in, _ = ask(t, s, "udp", "mx.example-bank.test.", dns.TypeA, 0)
	if in.Rcode != dns.RcodeNameError {
		t.Errorf("after Remove A: %s, want NXDOMAIN", dns.RcodeToString[in.Rcode])
	}

	for _, bad := range []struct {
		name string
		err  error
	}{
		{"Add garbage", s.Add(`example-bank.test. 300 IN MX ten mx.test.`)},
		{"Add empty", s.Add(``)},
		{"Add class CH", s.Add(`x.test. 300 CH TXT "a"`)},
		{"Set other owner", s.Set("a.test", dns.TypeTXT, `b.test. 300 IN TXT "x"`)},
		{"Set other type", s.Set("a.test", dns.TypeTXT, `a.test. 300 IN A 127.0.0.1`)},
		{"Load garbage", s.Load([]string{`a.test. 300 IN A 127.0.0.1`, `nonsense`})},
	} {
		if bad.err == nil || !strings.HasPrefix(bad.err.Error(), "dnsserver: ") {
			t.Errorf("%s: error = %v", bad.name, bad.err)
		}
	}

	s.SetFault("c.chain.test", FaultServfail)
	if err := s.Load(world); err != nil {
		t.Fatal(err)
	}
	if len(s.Faults()) != 0 {
		t.Error("Load kept faults")
	}
	recs := s.Records()
	if len(recs) != len(world) {
		t.Fatalf("Records() has %d, want %d", len(recs), len(world))
	}
	for i := 1; i < len(recs); i++ {
		if canonical(recs[i-1].Header().Name) > canonical(recs[i].Header().Name) {
			t.Errorf("Records not sorted: %s before %s", recs[i-1].Header().Name, recs[i].Header().Name)
		}
	}
	recs[0].Header().Ttl = 1 // a copy: must not change the server
	if s.Records()[0].Header().Ttl == 1 {
		t.Error("Records returned shared records")
	}
}

func TestConcurrentEditsAndQueries(t *testing.T) {
	s := startWorld(t)
	stop := make(chan struct{})
	writer := make(chan struct{})
	go func() {
		defer close(writer)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s.Set("example-bank.test", dns.TypeTXT, fmt.Sprintf(`example-bank.test. 300 IN TXT "v=spf1 ip4:127.0.0.%d -all"`, i%250))
			s.SetFault("c.chain.test", Fault(i%2))
			_ = s.Records()
			if i%50 == 0 {
				s.Load(world)
			}
		}
	}()
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for range 100 {
				for _, q := range []string{"example-bank.test.", "a.chain.test.", "selector1._domainkey.example-bank.test."} {
					if _, err := ask(t, s, "udp", q, dns.TypeTXT, 1232); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	readers.Wait()
	close(stop)
	<-writer
	if s.Queries() < 1200 {
		t.Errorf("Queries() = %d, want >= 1200", s.Queries())
	}
}

func TestCloseIdempotent(t *testing.T) {
	s, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Start("not-an-addr"); err == nil {
		t.Error("Start(not-an-addr) succeeded")
	}
}

func TestEmptyNonTerminalBookkeeping(t *testing.T) {
	z := newStore()
	for _, line := range []string{`a.b.c.test. 300 IN A 127.0.0.1`, `a.b.c.test. 300 IN TXT "x"`, `d.c.test. 300 IN A 127.0.0.2`} {
		rr, err := parseRR(line)
		if err != nil {
			t.Fatal(err)
		}
		z.add(rr)
	}
	ent := func(n string) bool { return z.hasDescendant(n) }
	if !ent("b.c.test.") || !ent("c.test.") || !ent("test.") || !ent(".") || ent("a.b.c.test.") {
		t.Fatalf("descendant counts wrong: %v", z.below)
	}
	z.remove("a.b.c.test.", dns.TypeA) // TXT remains: still a name
	if !ent("b.c.test.") {
		t.Error("b.c.test lost its descendant while a.b.c.test still holds TXT")
	}
	z.remove("a.b.c.test.", dns.TypeTXT)
	if ent("b.c.test.") || !ent("c.test.") {
		t.Errorf("after removing a.b.c.test: %v", z.below)
	}
	z.remove("d.c.test.", dns.TypeANY)
	if len(z.below) != 0 || len(z.names) != 0 {
		t.Errorf("empty store keeps %v %v", z.below, z.names)
	}
}
