package sender_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/lab/sender"
	"github.com/otpprobe/otpprobe/verify/resolver"
)

func TestConfigErrorsNameTheField(t *testing.T) {
	w := newWorld(t)
	tlsCfg, err := w.ca.ServerTLS("smtp.office365.test")
	if err != nil {
		t.Fatal(err)
	}
	valid := func() sender.Config {
		return sender.Config{
			Name: "m365", ListenAddr: lab.M365IP + ":0", SourceIP: lab.M365IP, Hostname: testHostname,
			TLS: tlsCfg, RootCAs: w.ca.Pool(), Username: testUser, Password: testPassword,
			AllowedFromDomain: lab.CustomerDomain,
			DKIM:              sender.DKIMConfig{Domain: lab.CustomerDomain, Selector: "s1", Signer: dkimKey(t)},
			Resolver:          w.resolver, MXPort: w.port,
		}
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tc := range []struct {
		mod  func(*sender.Config)
		want string
	}{
		{func(c *sender.Config) { c.Password = "" }, "missing Password"},
		{func(c *sender.Config) { c.DKIM.Selector = "" }, "missing DKIM.Selector"},
		{func(c *sender.Config) { c.SourceIP = "mx.example" }, `SourceIP "mx.example" is not an IP address`},
		{func(c *sender.Config) { c.TLS = nil }, "TLS needs a certificate"},
		{func(c *sender.Config) { c.RootCAs = nil }, "RootCAs missing"},
		{func(c *sender.Config) { c.DKIM.Signer = ecKey }, "unsupported public key type"},
		{func(c *sender.Config) { c.Resolver = nil }, "Resolver missing"},
		{func(c *sender.Config) { c.MXPort = 70000 }, "MXPort 70000 out of range"},
		{func(c *sender.Config) { c.RetryInterval, c.RetryExpiry = 5e9, 1e9 }, "RetryExpiry 1s shorter than RetryInterval 5s"},
		{func(c *sender.Config) { c.ListenAddr = "127.0.0.11:99999" }, "listen"},
	} {
		cfg := valid()
		tc.mod(&cfg)
		s, err := sender.Start(cfg)
		if err == nil {
			s.Close()
			t.Errorf("want error containing %q, got none", tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), testPassword) || strings.Contains(err.Error(), "\n") {
			t.Errorf("error %q, want one line containing %q", err, tc.want)
		}
	}
	s, err := sender.Start(valid())
	if err != nil {
		t.Fatalf("valid config: %v", err)
	}
	s.Close()
}

// TestDKIMRecordEd25519: a record DKIMRecord publishes verifies a
// signature made with the matching key.
func TestDKIMRecordEd25519(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := sender.DKIMRecord(pub)
	if err != nil || !strings.HasPrefix(rec, "v=DKIM1; k=ed25519; p=") {
		t.Fatalf("record %q, %v", rec, err)
	}
	msg := "From: a@example-bank.test\r\nSubject: x\r\n\r\nbody\r\n"
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, strings.NewReader(msg), &dkim.SignOptions{Domain: "example-bank.test", Selector: "ed", Signer: priv}); err != nil {
		t.Fatal(err)
	}
	v, err := dkim.VerifyWithOptions(&signed, &dkim.VerifyOptions{LookupTXT: func(string) ([]string, error) { return []string{rec}, nil }})
	if err != nil || len(v) != 1 || v[0].Err != nil {
		t.Fatalf("verify: %v %+v", err, v)
	}
	rsaRec, err := sender.DKIMRecord(dkimKey(t).Public())
	if err != nil || !strings.HasPrefix(rsaRec, "v=DKIM1; k=rsa; p=MII") {
		t.Errorf("RSA record %q, %v", rsaRec, err)
	}
}

// The lab wires verify/resolver into the senders.
var _ sender.Resolver = (*resolver.Resolver)(nil)
