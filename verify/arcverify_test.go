package verify

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"
	"gopkg.in/yaml.v3"
)

// staticTXT is a LookupTXT over a fixed map: these tests check the
// cryptography, the resolver has its own tests against real DNS servers.
func staticTXT(records map[string]string) LookupTXT {
	return func(_ context.Context, name string) ([]string, error) {
		if v, ok := records[strings.ToLower(name)]; ok {
			return []string{v}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
}

// TestARCVerifyValiMail checks the validator against messages sealed by
// someone else's signer: the ValiMail ARC test suite (see the yml file).
func TestARCVerifyValiMail(t *testing.T) {
	raw, err := os.ReadFile("testdata/arc/valimail-validation.yml")
	if err != nil {
		t.Fatal(err)
	}
	var suite struct {
		Tests map[string]struct {
			Description string `yaml:"description"`
			Message     string `yaml:"message"`
			CV          string `yaml:"cv"`
		} `yaml:"tests"`
		TXT map[string]string `yaml:"txt-records"`
	}
	if err := yaml.Unmarshal(raw, &suite); err != nil {
		t.Fatal(err)
	}
	if len(suite.Tests) < 4 {
		t.Fatalf("read %d tests", len(suite.Tests))
	}
	v := ARCValidator{Lookup: staticTXT(suite.TXT)}
	for name, tc := range suite.Tests {
		t.Run(name, func(t *testing.T) {
			chain, err := VerifyARCMessage(context.Background(), v, []byte(tc.Message))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := chain.CV, strings.ToLower(tc.CV); got != want {
				t.Fatalf("%s: cv=%s (error %q), want %s", tc.Description, got, chain.Error, want)
			}
			if want := tc.CV == "Pass"; chain.Verified != want || chain.Valid != want {
				t.Errorf("verified=%v valid=%v, want %v", chain.Verified, chain.Valid, want)
			}
		})
	}
}

// Tampering with the suite's passing message must break the right
// signature: the body breaks the AMS, an ARC header breaks the seal.
func TestARCVerifyValiMailTampered(t *testing.T) {
	raw, _ := os.ReadFile("testdata/arc/valimail-validation.yml")
	var suite struct {
		Tests map[string]struct {
			Message string `yaml:"message"`
		} `yaml:"tests"`
		TXT map[string]string `yaml:"txt-records"`
	}
	if err := yaml.Unmarshal(raw, &suite); err != nil {
		t.Fatal(err)
	}
	msg := suite.Tests["cv_pass_i2_1"].Message
	v := ARCValidator{Lookup: staticTXT(suite.TXT)}
	for _, tc := range []struct {
		name, old, new, field string
		instance              int
	}{
		{"body", "This is a test message.", "This is a forged message.", fieldAMS, 2},
		{"signed header", "Subject: Example 1", "Subject: [list] Example 1", fieldAMS, 2},
		// AMS i=2 signs the AAR nearest the bottom (i=1, RFC 6376 §5.4.2):
		// an edit there breaks it first.
		{"older AAR", "i=1; lists.example.org;\n    spf=pass", "i=1; lists.example.org;\n    spf=fail", fieldAMS, 2},
		// No AMS signs another AMS: only the seals see this.
		{"older AMS", "i=1; s=dummy; t=12345", "i=1; s=dummy; t=12399", fieldAS, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := strings.Replace(msg, tc.old, tc.new, 1)
			if m == msg {
				t.Fatalf("%q not in the message", tc.old)
			}
			chain, err := VerifyARCMessage(context.Background(), v, []byte(m))
			if err != nil {
				t.Fatal(err)
			}
			if chain.CV != "fail" || chain.Verified {
				t.Fatalf("cv=%s verified=%v, want fail", chain.CV, chain.Verified)
			}
			want := tc.field + " i=" + string(rune('0'+tc.instance))
			if !strings.HasPrefix(chain.Error, want) {
				t.Errorf("error %q, want it to start with %q", chain.Error, want)
			}
		})
	}
}

func testKeyRecord(t testing.TB, pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(k)
	}
	t.Fatalf("key %T", pub)
	return ""
}

const sealTestMessage = "From: OTP <otp@example-bank.test>\r\n" +
	"To: list@lists.forwarder.test\r\n" +
	"Subject: Your code [tok123]\r\n" +
	"Date: Mon, 23 Nov 2026 18:00:00 +0000\r\n" +
	"Message-ID: <1@example-bank.test>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"Your verification code is 483920.  \r\n\r\n\r\n"

// Two hops seal in turn (RSA, then Ed25519); the chain verifies, and the
// list's Subject edit after the first seal breaks only the older AMS.
func TestARCSealTwoHops(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, ek, _ := ed25519.GenerateKey(rand.Reader)
	txt := map[string]string{
		"arc1._domainkey.lists.forwarder.test": testKeyRecord(t, rk.Public()),
		"arc2._domainkey.relay.test":           testKeyRecord(t, ek.Public()),
	}
	v := ARCValidator{Lookup: staticTXT(txt)}
	now := func() time.Time { return time.Unix(1795000000, 0) }

	hop1 := &ARCSealer{Domain: "lists.forwarder.test", Selector: "arc1", Signer: rk, Now: now}
	set1, err := hop1.Seal([]byte(sealTestMessage), "lists.forwarder.test; spf=pass smtp.mailfrom=example-bank.test; dkim=pass header.d=example-bank.test; dmarc=pass", "none")
	if err != nil {
		t.Fatal(err)
	}
	msg1 := set1 + sealTestMessage
	chain, err := VerifyARCMessage(context.Background(), v, []byte(msg1))
	if err != nil || chain.CV != "pass" || !chain.Verified || chain.Instances != 1 {
		t.Fatalf("hop 1: cv=%s verified=%v instances=%d err=%v %s", chain.CV, chain.Verified, chain.Instances, err, chain.Error)
	}
	if chain.Sets[0].CV != "none" {
		t.Errorf("hop 1 sealed cv=%s, want none", chain.Sets[0].CV)
	}

	// A relay that only re-wraps lines: LF endings must not matter.
	lf := strings.ReplaceAll(msg1, "\r\n", "\n")
	if chain, _ := VerifyARCMessage(context.Background(), v, []byte(lf)); !chain.Verified {
		t.Fatalf("LF copy: cv=%s %s", chain.CV, chain.Error)
	}

	edited := strings.Replace(msg1, "Subject: Your code", "Subject: [list] Your code", 1)
	if chain, _ := VerifyARCMessage(context.Background(), v, []byte(edited)); chain.CV != "fail" {
		t.Fatalf("edited after sealing: cv=%s, want fail", chain.CV)
	}
	hop2 := &ARCSealer{Domain: "relay.test", Selector: "arc2", Signer: ek, Now: now}
	set2, err := hop2.Seal([]byte(edited), "relay.test; arc=pass", "pass")
	if err != nil {
		t.Fatal(err)
	}
	chain, err = VerifyARCMessage(context.Background(), v, []byte(set2+edited))
	if err != nil || chain.CV != "pass" || !chain.Verified || chain.Instances != 2 {
		t.Fatalf("hop 2: cv=%s verified=%v instances=%d err=%v %s", chain.CV, chain.Verified, chain.Instances, err, chain.Error)
	}
}

func TestARCVerifyKeyErrors(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	s := &ARCSealer{Domain: "f.test", Selector: "k", Signer: rk}
	set, err := s.Seal([]byte(sealTestMessage), "f.test; dkim=pass", "none")
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte(set + sealTestMessage)
	other, _ := rsa.GenerateKey(rand.Reader, 1024)
	temp := func(context.Context, string) ([]string, error) {
		return nil, &net.DNSError{Err: "server misbehaving", IsTemporary: true}
	}
	for _, tc := range []struct {
		name   string
		lookup LookupTXT
		want   string
		temp   bool
	}{
		{"no key", staticTXT(nil), "no such host", false},
		{"wrong key", staticTXT(map[string]string{"k._domainkey.f.test": testKeyRecord(t, other.Public())}), "signature did not verify", false},
		{"revoked", staticTXT(map[string]string{"k._domainkey.f.test": "v=DKIM1; p="}), "key revoked", false},
		{"wrong type", staticTXT(map[string]string{"k._domainkey.f.test": "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(make([]byte, 32))}), "does not match", false},
		{"servfail", temp, "server misbehaving", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chain, _ := VerifyARCMessage(context.Background(), ARCValidator{Lookup: tc.lookup}, msg)
			if chain.CV != "fail" || !strings.Contains(chain.Error, tc.want) {
				t.Fatalf("cv=%s error %q, want fail with %q", chain.CV, chain.Error, tc.want)
			}
			var ae *ARCError
			err := ARCValidator{Lookup: tc.lookup}.VerifyARC(context.Background(), strings.NewReader(string(msg)), ParseARC(mustHeader(t, msg)))
			if !errors.As(err, &ae) || ae.Temporary != tc.temp {
				t.Errorf("error %v (%T), want *ARCError with Temporary=%v", err, err, tc.temp)
			}
		})
	}
}

func mustHeader(t testing.TB, msg []byte) textproto.Header {
	h, err := ReadHeader(strings.NewReader(string(msg)))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// BenchmarkARCVerify measures a two-set chain (one AMS, two seals, RSA
// 1024) with keys from memory: the cost of ARC on top of the DNS lookups.
func BenchmarkARCVerify(b *testing.B) {
	raw, err := os.ReadFile("testdata/arc/valimail-validation.yml")
	if err != nil {
		b.Fatal(err)
	}
	var suite struct {
		Tests map[string]struct {
			Message string `yaml:"message"`
		} `yaml:"tests"`
		TXT map[string]string `yaml:"txt-records"`
	}
	if err := yaml.Unmarshal(raw, &suite); err != nil {
		b.Fatal(err)
	}
	msg := []byte(suite.Tests["cv_pass_i2_1"].Message)
	v := ARCValidator{Lookup: staticTXT(suite.TXT)}
	b.ReportAllocs()
	for b.Loop() {
		if c, _ := VerifyARCMessage(context.Background(), v, msg); !c.Verified {
			b.Fatal(c.Error)
		}
	}
}
