package resolver_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net"
	"strings"
	"testing"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"
	"github.com/miekg/dns"
	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/lab/dnsserver"
)

// The SPF and DKIM/DMARC libraries must classify lab DNS faults the way
// receivers do, through this resolver.

func TestSPFThroughResolver(t *testing.T) {
	tests := []struct {
		name string
		ip   string
		edit func(s *dnsserver.Server)
		want spf.Result
	}{
		{"m365 pass", lab.M365IP, nil, spf.Pass},
		{"backup pass", lab.BackupIP, nil, spf.Pass},
		{"stranger fail", "127.0.0.99", nil, spf.Fail},
		{"include SERVFAIL", lab.BackupIP, func(s *dnsserver.Server) {
			s.SetFault(lab.M365SPFInclude, dnsserver.FaultServfail)
		}, spf.TempError},
		{"include timeout", lab.BackupIP, func(s *dnsserver.Server) {
			s.SetFault(lab.M365SPFInclude, dnsserver.FaultTimeout)
		}, spf.TempError},
		{"include NXDOMAIN", lab.BackupIP, func(s *dnsserver.Server) {
			s.Remove(lab.M365SPFInclude, dns.TypeANY)
		}, spf.PermError},
		{"include has no SPF record", lab.BackupIP, func(s *dnsserver.Server) {
			s.Set(lab.M365SPFInclude, dns.TypeTXT, lab.M365SPFInclude+`. 300 IN TXT "MS=ms12345"`)
		}, spf.PermError},
		{"domain SERVFAIL", lab.M365IP, func(s *dnsserver.Server) {
			s.SetFault(lab.CustomerDomain, dnsserver.FaultServfail)
		}, spf.TempError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := startWorld(t)
			for _, rr := range []string{
				lab.M365SPFInclude + `. 300 IN TXT "v=spf1 ip4:` + lab.M365IP + ` -all"`,
				lab.BackupSPFInclude + `. 300 IN TXT "v=spf1 ip4:` + lab.BackupIP + ` -all"`,
			} {
				if err := s.Add(rr); err != nil {
					t.Fatal(err)
				}
			}
			if tc.edit != nil {
				tc.edit(s)
			}
			r := newResolver(t, s.Addr())
			ctx := context.Background()
			got, err := spf.CheckHostWithSender(net.ParseIP(tc.ip), "mail.test", lab.OTPFrom,
				spf.WithResolver(r), spf.WithContext(ctx))
			if got != tc.want {
				t.Errorf("spf = %s (%v), want %s", got, err, tc.want)
			}
		})
	}
}

func TestDKIMAndDMARCThroughResolver(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyTXT := "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
	const target1 = "selector1-example-bank-test._domainkey." + lab.TenantDomain
	const dmarcName = "_dmarc." + lab.CustomerDomain

	sign := func(selector string) []byte {
		msg := "From: " + lab.OTPFrom + "\r\nTo: seed@gmail.test\r\nSubject: Your code\r\n\r\nYour verification code is 483920\r\n"
		var b bytes.Buffer
		err := dkim.Sign(&b, strings.NewReader(msg), &dkim.SignOptions{
			Domain: lab.CustomerDomain, Selector: selector, Signer: priv,
			HeaderKeys: []string{"From", "To", "Subject"},
		})
		if err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}

	tests := []struct {
		name     string
		selector string
		edit     func(s *dnsserver.Server)
		want     string // pass, permfail, tempfail
		detail   string
	}{
		{"active selector", lab.M365ActiveSelector, nil, "pass", ""},
		{"inactive selector: CNAME to nothing", lab.M365InactiveSelector, nil, "permfail", "no key for signature"},
		{"key TXT deleted behind CNAME", lab.M365ActiveSelector, func(s *dnsserver.Server) {
			s.Remove(target1, dns.TypeTXT)
		}, "permfail", "no key for signature"},
		{"SERVFAIL on the selector", lab.M365ActiveSelector, func(s *dnsserver.Server) {
			s.SetFault(lab.M365ActiveSelector+"._domainkey."+lab.CustomerDomain, dnsserver.FaultServfail)
		}, "tempfail", "key unavailable"},
		{"SERVFAIL on the tenant key", lab.M365ActiveSelector, func(s *dnsserver.Server) {
			s.SetFault(target1, dnsserver.FaultServfail)
		}, "tempfail", "key unavailable"},
		{"timeout on the key", lab.M365ActiveSelector, func(s *dnsserver.Server) {
			s.SetFault(target1, dnsserver.FaultTimeout)
		}, "tempfail", "key unavailable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := startWorld(t)
			if err := s.Set(target1, dns.TypeTXT, target1+`. 300 IN TXT "`+keyTXT+`"`); err != nil {
				t.Fatal(err)
			}
			if tc.edit != nil {
				tc.edit(s)
			}
			r := newResolver(t, s.Addr())
			ctx := context.Background()
			lookup := func(name string) ([]string, error) { return r.LookupTXT(ctx, name) }
			vs, err := dkim.VerifyWithOptions(bytes.NewReader(sign(tc.selector)), &dkim.VerifyOptions{LookupTXT: lookup})
			if err != nil || len(vs) != 1 {
				t.Fatalf("verify: %v, %d verifications", err, len(vs))
			}
			verr := vs[0].Err
			var got string
			switch {
			case verr == nil:
				got = "pass"
			case dkim.IsTempFail(verr):
				got = "tempfail"
			case dkim.IsPermFail(verr):
				got = "permfail"
			default:
				got = "fail"
			}
			if got != tc.want || (tc.detail != "" && !strings.Contains(verr.Error(), tc.detail)) {
				t.Errorf("dkim = %s (%v), want %s %q", got, verr, tc.want, tc.detail)
			}
		})
	}

	t.Run("dmarc", func(t *testing.T) {
		s := startWorld(t)
		if err := s.Add(dmarcName + `. 300 IN TXT "v=DMARC1; p=reject; rua=mailto:` + lab.DMARCRUAAddress + `"`); err != nil {
			t.Fatal(err)
		}
		r := newResolver(t, s.Addr())
		ctx := context.Background()
		opts := &dmarc.LookupOptions{LookupTXT: func(name string) ([]string, error) { return r.LookupTXT(ctx, name) }}

		rec, err := dmarc.LookupWithOptions(lab.CustomerDomain, opts)
		if err != nil || rec.Policy != dmarc.PolicyReject {
			t.Errorf("healthy: %v, %v; want p=reject", rec, err)
		}
		s.SetFault(dmarcName, dnsserver.FaultServfail)
		if _, err := dmarc.LookupWithOptions(lab.CustomerDomain, opts); !dmarc.IsTempFail(err) {
			t.Errorf("SERVFAIL: err = %v, want a temporary failure", err)
		}
		s.ClearFaults()
		s.Remove(dmarcName, dns.TypeTXT)
		if _, err := dmarc.LookupWithOptions(lab.CustomerDomain, opts); err != dmarc.ErrNoPolicy {
			t.Errorf("deleted: err = %v, want ErrNoPolicy", err)
		}
	})
}
