package dnscheck

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/lab/dnsserver"
	"github.com/otpprobe/otpprobe/verify/resolver"
)

const stsHost = "mta-sts." + lab.CustomerDomain

// policyServer is a real HTTPS server on loopback presenting a lab CA
// certificate for mta-sts.example-bank.test; the client dials it for any
// host, as DNS would send it there.
type policyServer struct {
	mu      sync.Mutex
	status  int
	ctype   string
	body    string
	client  *http.Client
	srvAddr string
}

func (p *policyServer) set(status int, ctype, body string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status, p.ctype, p.body = status, ctype, body
}

func startPolicyServer(t *testing.T, ca *lab.CA) *policyServer {
	t.Helper()
	p := &policyServer{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if r.URL.Path != "/.well-known/mta-sts.txt" || r.Host != stsHost {
			http.NotFound(w, r)
			return
		}
		if p.status == http.StatusFound {
			http.Redirect(w, r, "https://elsewhere.test/policy", http.StatusFound)
			return
		}
		w.Header().Set("Content-Type", p.ctype)
		w.WriteHeader(p.status)
		fmt.Fprint(w, p.body)
	}))
	cfg, err := ca.ServerTLS(stsHost)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = cfg
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted-client case logs a handshake error
	srv.StartTLS()
	t.Cleanup(srv.Close)
	p.srvAddr = srv.Listener.Addr().String()
	p.client = &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: ca.Pool()},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, p.srvAddr)
			},
		},
	}
	return p
}

const goodPolicy = "version: STSv1\nmode: enforce\nmx: mx.example-bank.test\nmax_age: 604800\n"

func TestMTASTSAndTLSRPT(t *testing.T) {
	ca, err := lab.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	ps := startPolicyServer(t, ca)
	stsTXT := txt("_mta-sts."+lab.CustomerDomain, "v=STSv1; id=20261123T1800")
	rptTXT := txt("_smtp._tls."+lab.CustomerDomain, "v=TLSRPTv1; rua=mailto:tlsrpt@example-bank.test")

	tests := []struct {
		name   string
		zone   []string
		status int
		ctype  string
		policy string
		client *http.Client // nil: the trusting client
		want   []want       // findings of warning and above
		notes  []string     // note codes that must appear
	}{
		{"enforce, mx listed", []string{stsTXT, rptTXT}, 200, "text/plain", goodPolicy, nil, nil, nil},
		{"wildcard mx", []string{stsTXT, rptTXT}, 200, "text/plain; charset=utf-8",
			strings.Replace(goodPolicy, "mx: mx.", "mx: *.", 1), nil, nil, nil},
		{"mx not in policy", []string{stsTXT, rptTXT}, 200, "text/plain",
			strings.Replace(goodPolicy, "mx.example-bank.test", "*.other.test", 1), nil,
			[]want{{SeverityCritical, "mta_sts.mx_mismatch", lab.BankMX + ".", "*.other.test"}}, nil},
		{"testing mode mismatch", []string{stsTXT, rptTXT}, 200, "text/plain",
			"version: STSv1\nmode: testing\nmx: other.test\nmax_age: 86400\n", nil,
			[]want{{SeverityWarning, "mta_sts.mx_mismatch", lab.BankMX + ".", ""}}, []string{"mta_sts.testing"}},
		{"short max_age", []string{stsTXT, rptTXT}, 200, "text/plain",
			strings.Replace(goodPolicy, "604800", "3600", 1), nil,
			[]want{{SeverityWarning, "mta_sts.short_max_age", stsHost + ".", "3600"}}, nil},
		{"policy 404", []string{stsTXT, rptTXT}, 404, "text/plain", "", nil,
			[]want{{SeverityError, "mta_sts.policy_unavailable", stsHost + ".", "404"}}, nil},
		{"policy redirect not followed", []string{stsTXT, rptTXT}, 302, "text/plain", "", nil,
			[]want{{SeverityError, "mta_sts.policy_unavailable", stsHost + ".", "302"}}, nil},
		{"policy wrong content type", []string{stsTXT, rptTXT}, 200, "text/html", goodPolicy, nil,
			[]want{{SeverityError, "mta_sts.policy_unavailable", stsHost + ".", "text/html"}}, nil},
		{"policy without version", []string{stsTXT, rptTXT}, 200, "text/plain",
			"mode: enforce\nmx: mx.example-bank.test\nmax_age: 604800\n", nil,
			[]want{{SeverityError, "mta_sts.policy_unavailable", stsHost + ".", "version"}}, nil},
		{"untrusted certificate", []string{stsTXT, rptTXT}, 200, "text/plain", goodPolicy,
			&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, ps.srvAddr)
			}}},
			[]want{{SeverityError, "mta_sts.policy_unavailable", stsHost + ".", "certificate"}}, nil},
		{"record without id", []string{txt("_mta-sts."+lab.CustomerDomain, "v=STSv1;"), rptTXT}, 200, "text/plain", goodPolicy, nil,
			[]want{{SeverityError, "mta_sts.syntax", "_mta-sts." + lab.CustomerDomain + ".", ""}}, nil},
		{"no tls-rpt", []string{stsTXT}, 200, "text/plain", goodPolicy, nil, nil, []string{"tlsrpt.missing"}},
		{"tls-rpt bad rua", []string{stsTXT, txt("_smtp._tls."+lab.CustomerDomain, "v=TLSRPTv1; rua=reports@example-bank.test")},
			200, "text/plain", goodPolicy, nil,
			[]want{{SeverityWarning, "tlsrpt.syntax", "_smtp._tls." + lab.CustomerDomain + ".", ""}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, r := startWorld(t)
			for _, rr := range tc.zone {
				if err := s.Add(rr); err != nil {
					t.Fatal(err)
				}
			}
			ps.set(tc.status, tc.ctype, tc.policy)
			client := ps.client
			if tc.client != nil {
				client = tc.client
			}
			rep := Checker{HTTPClient: client}.Check(context.Background(), r, customer())
			assertFindings(t, rep, tc.want)
			for _, code := range tc.notes {
				if len(rep.Has(code)) != 1 {
					t.Errorf("want note %s:\n%s", code, dump(rep))
				}
			}
		})
	}
}

// assertFindings checks that the findings of warning and above are exactly want.
func assertFindings(t *testing.T, rep Report, wants []want) {
	t.Helper()
	var got []Finding
	for _, f := range rep.Findings {
		if f.Severity >= SeverityWarning {
			got = append(got, f)
		}
	}
	ok := len(got) == len(wants)
	for _, w := range wants {
		if !slices.ContainsFunc(got, func(f Finding) bool {
			return f.Severity == w.sev && f.Code == w.code && f.Name == w.name && strings.Contains(f.Data, w.data)
		}) {
			ok = false
		}
	}
	if !ok {
		t.Errorf("want %v\ngot:\n%s", wants, dump(rep))
	}
}

func TestParseSTSPolicy(t *testing.T) {
	pol, err := parseSTSPolicy([]byte("version: STSv1\r\nmode: enforce\r\nmx: a.test\r\nmx: *.b.test\r\nmax_age: 86400\r\n"))
	if err != nil || pol.mode != "enforce" || len(pol.mx) != 2 || pol.maxAge != 86400 {
		t.Fatalf("parse = %+v, %v", pol, err)
	}
	for host, want := range map[string]bool{"a.test.": true, "x.b.test": true, "b.test": false, "y.x.b.test": false, "c.test": false} {
		if stsMatches(pol.mx, host) != want {
			t.Errorf("stsMatches(%s) = %v", host, !want)
		}
	}
	for _, bad := range []string{
		"version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n",
		"version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmx: a.test\n",
		"version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 99999999999\n",
		"garbage",
	} {
		if _, err := parseSTSPolicy([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// mxTLS is a real TLS listener presenting a lab certificate for the bank's
// MX; certs fetches what it presents, as a STARTTLS probe would.
func mxTLS(t *testing.T, ca *lab.CA) (leaf *x509.Certificate, certs func(ctx context.Context, host string) ([]*x509.Certificate, error)) {
	t.Helper()
	cfg, err := ca.ServerTLS(lab.BankMX)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.(*tls.Conn).Handshake()
				c.Read(make([]byte, 1))
			}()
		}
	}()
	leaf, err = x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf, func(ctx context.Context, host string) ([]*x509.Certificate, error) {
		d := tls.Dialer{Config: &tls.Config{ServerName: strings.TrimSuffix(host, "."), RootCAs: ca.Pool()}}
		c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return c.(*tls.Conn).ConnectionState().PeerCertificates, nil
	}
}

func TestDANE(t *testing.T) {
	ca, err := lab.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	leaf, certs := mxTLS(t, ca)
	good, err := dns.CertificateToDANE(1, 1, leaf)
	if err != nil {
		t.Fatal(err)
	}
	tlsaName := "_25._tcp." + lab.BankMX
	tlsa := func(usage int, data string) string {
		return fmt.Sprintf("%s. 300 IN TLSA %d 1 1 %s", tlsaName, usage, data)
	}
	bad := strings.Repeat("ab", 32)
	rpt := txt("_smtp._tls."+lab.CustomerDomain, "v=TLSRPTv1; rua=mailto:tlsrpt@example-bank.test")

	tests := []struct {
		name   string
		zone   []string
		fault  dnsserver.Fault
		dnssec bool
		want   []want
		notes  []string
	}{
		{"matching DANE-EE", []string{tlsa(3, strings.ToUpper(good)), rpt}, 0, false, nil, []string{"dane.unverified"}},
		{"mismatch", []string{tlsa(3, bad), rpt}, 0, false,
			[]want{{SeverityCritical, "dane.mismatch", tlsaName + ".", bad}}, nil},
		{"one of two matches (rollover)", []string{tlsa(3, bad), tlsa(3, good), rpt}, 0, false, nil, nil},
		{"PKIX usage", []string{tlsa(1, good), rpt}, 0, false,
			[]want{
				{SeverityWarning, "dane.pkix_usage", tlsaName + ".", ""},
				{SeverityCritical, "dane.mismatch", tlsaName + ".", ""},
			}, nil},
		{"not authenticated", []string{tlsa(3, good), rpt}, 0, true,
			[]want{{SeverityError, "dane.unauthenticated", tlsaName + ".", good}}, []string{"dnssec.unsigned"}},
		{"TLSA SERVFAIL", []string{tlsa(3, good), rpt}, dnsserver.FaultServfail, false,
			[]want{{SeverityError, "dane.tempfail", tlsaName + ".", "SERVFAIL"}}, nil},
		{"no tls-rpt", []string{tlsa(3, good)}, 0, false, nil, []string{"tlsrpt.missing"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := startWorld(t)
			for _, rr := range tc.zone {
				if err := s.Add(rr); err != nil {
					t.Fatal(err)
				}
			}
			s.SetFault(tlsaName, tc.fault)
			r, err := resolver.New(resolver.Config{Servers: []string{s.Addr()}, Timeout: 200 * time.Millisecond, DNSSEC: tc.dnssec})
			if err != nil {
				t.Fatal(err)
			}
			rep := Checker{MXCertificates: certs}.Check(context.Background(), r, customer())
			assertFindings(t, rep, tc.want)
			for _, code := range tc.notes {
				if len(rep.Has(code)) != 1 {
					t.Errorf("want note %s:\n%s", code, dump(rep))
				}
			}
		})
	}
}
