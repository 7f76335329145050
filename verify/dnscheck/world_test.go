package dnscheck

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/lab/dnsserver"
	"github.com/otpprobe/otpprobe/verify/resolver"
)

// rsaKeyTXT returns a DKIM key record whose RSA modulus has bits bits. Only
// the size matters to the checks, so no private key is generated.
func rsaKeyTXT(t testing.TB, bits int, extra string) string {
	t.Helper()
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
	n.Add(n, big.NewInt(0x1f))
	der, err := x509.MarshalPKIXPublicKey(&rsa.PublicKey{N: n, E: 65537})
	if err != nil {
		t.Fatal(err)
	}
	return "v=DKIM1; k=rsa; " + extra + "p=" + base64.StdEncoding.EncodeToString(der)
}

func txt(name, value string) string {
	return fmt.Sprintf("%s. 300 IN TXT %q", strings.TrimSuffix(name, "."), value)
}

// healthyWorld is the lab's healthy zone for the customer domain, built from
// the lab's contract names.
func healthyWorld(t testing.TB) []string {
	key := rsaKeyTXT(t, 2048, "")
	return []string{
		txt(lab.CustomerDomain, lab.CustomerSPF),
		txt("_dmarc."+lab.CustomerDomain, lab.CustomerDMARC),
		fmt.Sprintf("%s. 300 IN CNAME %s.", lab.DKIMName(lab.M365ActiveSelector, lab.CustomerDomain), lab.M365SelectorTarget(lab.M365ActiveSelector)),
		fmt.Sprintf("%s. 300 IN CNAME %s.", lab.DKIMName(lab.M365InactiveSelector, lab.CustomerDomain), lab.M365SelectorTarget(lab.M365InactiveSelector)),
		txt(lab.M365SelectorTarget(lab.M365ActiveSelector), key),
		txt(lab.DKIMName(lab.BackupSelector, lab.CustomerDomain), key),
		fmt.Sprintf("%s. 300 IN MX 10 %s.", lab.CustomerDomain, lab.BankMX),
		fmt.Sprintf("%s. 300 IN A %s", lab.BankMX, lab.BankMXIP),
		txt(lab.M365SPFInclude, "v=spf1 ip4:"+lab.M365IP+" -all"),
		txt(lab.BackupSPFInclude, "v=spf1 ip4:"+lab.BackupIP+" -all"),
		// The marketing tool's chain (10 lookups on its own), as in lab/zone.go.
		txt(lab.MarketingInclude, "v=spf1 include:_spf1.marketing-tool.test include:_spf2.marketing-tool.test include:_spf3.marketing-tool.test include:_spf4.marketing-tool.test ~all"),
		txt("_spf1.marketing-tool.test", "v=spf1 ip4:198.51.100.0/26 a:mta1.marketing-tool.test ~all"),
		txt("_spf2.marketing-tool.test", "v=spf1 ip4:198.51.100.64/26 a:mta2.marketing-tool.test ~all"),
		txt("_spf3.marketing-tool.test", "v=spf1 ip4:198.51.100.128/26 a:mta3.marketing-tool.test ~all"),
		txt("_spf4.marketing-tool.test", "v=spf1 a:mta4.marketing-tool.test mx:marketing-tool.test ~all"),
		"mta1.marketing-tool.test. 300 IN A 198.51.100.1",
		"mta2.marketing-tool.test. 300 IN A 198.51.100.65",
		"mta3.marketing-tool.test. 300 IN A 198.51.100.129",
		"mta4.marketing-tool.test. 300 IN A 198.51.100.193",
		"marketing-tool.test. 300 IN MX 10 mta4.marketing-tool.test.",
	}
}

// customer is the lab customer as the prober's config describes it.
func customer() Domain {
	return Domain{
		Name: lab.CustomerDomain,
		Selectors: []Selector{
			{Name: lab.M365ActiveSelector, Active: true},
			{Name: lab.M365InactiveSelector},
			{Name: lab.BackupSelector, Active: true},
		},
		SourceIPs: []net.IP{net.ParseIP(lab.M365IP), net.ParseIP(lab.BackupIP)},
		Senders: []Sender{
			{Name: lab.SenderM365, EnvelopeFrom: lab.OTPFrom, DKIMDomain: lab.CustomerDomain},
			{Name: lab.SenderBackup, EnvelopeFrom: lab.BounceAddress, DKIMDomain: lab.CustomerDomain},
		},
	}
}

func startWorld(t testing.TB) (*dnsserver.Server, *resolver.Resolver) {
	t.Helper()
	s, err := dnsserver.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Load(healthyWorld(t)); err != nil {
		t.Fatal(err)
	}
	r, err := resolver.New(resolver.Config{Servers: []string{s.Addr()}, Timeout: 300 * time.Millisecond, Retries: 2})
	if err != nil {
		t.Fatal(err)
	}
	return s, r
}

func runCheck(t testing.TB, r *resolver.Resolver, d Domain) Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return CheckDomain(ctx, r, d)
}
