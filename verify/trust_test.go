package verify

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"
)

func header(t *testing.T, block string) textproto.Header {
	t.Helper()
	h, err := ReadHeader(strings.NewReader(block))
	if err != nil {
		t.Fatalf("ReadHeader: %v", err)
	}
	return h
}

// A sender can write any Authentication-Results it likes into the
// message; only the receiver's own, topmost header may be believed.
const forged = "Authentication-Results: mx.google.com;\r\n" +
	"       dkim=fail header.i=@example.com header.s=s1 header.b=AAAA;\r\n" +
	"       spf=softfail (google.com: domain of a@example.com does not designate 192.0.2.9 as permitted sender) smtp.mailfrom=a@example.com;\r\n" +
	"       dmarc=fail (p=REJECT sp=REJECT dis=QUARANTINE) header.from=example.com\r\n" +
	"Received: from attacker.example (attacker.example [192.0.2.9]) by mx.google.com\r\n" +
	"Authentication-Results: mx.google.com; dkim=pass header.i=@example.com; spf=pass smtp.mailfrom=a@example.com; dmarc=pass header.from=example.com\r\n" +
	"Authentication-Results: evil.example; dmarc=pass header.from=example.com\r\n" +
	"From: <a@example.com>\r\n\r\n"

func TestEvaluateTopmostTrustedWins(t *testing.T) {
	ev := Evaluate(header(t, forged), "MX.GOOGLE.COM")
	hr, ok := ev.TrustedHeader()
	if !ok || hr.Index != 0 || !hr.Trusted {
		t.Fatalf("trusted = %+v, %v", hr, ok)
	}
	if len(ev.Headers) != 3 || ev.Headers[1].Trusted || ev.Headers[2].Trusted {
		t.Fatalf("headers = %+v", ev.Headers)
	}
	v := Summarize(header(t, forged), "mx.google.com")
	if !v.Trusted || v.DMARC != "fail" || v.SPF != "softfail" || v.DKIM != "fail" {
		t.Errorf("verdicts = %+v, want the receiver's failures", v)
	}
	if len(v.Untrusted) != 2 || v.Untrusted[0].Results[2].Result != "pass" || v.Untrusted[1].AuthservID != "evil.example" {
		t.Errorf("untrusted headers not kept: %+v", v.Untrusted)
	}
}

func TestEvaluateNoneTrustsHeaderWithoutID(t *testing.T) {
	block := "Authentication-Results: spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=example.com; dkim=pass (signature was verified) header.d=example.com;dmarc=pass action=none header.from=example.com;compauth=pass reason=100\n" +
		"Authentication-Results: mx.google.com; dmarc=fail header.from=example.com\n" +
		"Authentication-Results: spf=fail smtp.mailfrom=example.com\n\n"
	v := Summarize(header(t, block), TrustNoID)
	if !v.Trusted || v.AuthservID != "" || v.SPF != "pass" || v.DMARC != "pass" || v.DKIM != "pass" {
		t.Fatalf("verdicts = %+v", v)
	}
	if len(v.Untrusted) != 2 {
		t.Errorf("untrusted = %d, want 2", len(v.Untrusted))
	}
	// "none" is a keyword, not a host: a header really named "none" is not
	// the Microsoft form.
	if ev := Evaluate(header(t, "Authentication-Results: none; spf=pass\n\n"), TrustNoID); ev.Trusted != -1 {
		t.Errorf("a header with authserv-id %q was trusted for %q", "none", TrustNoID)
	}
}

func TestSummarizeWithoutConfiguredID(t *testing.T) {
	h := header(t, forged)
	v := Summarize(h, "")
	if v.Trusted || v.AuthservID != "mx.google.com" || v.DMARC != "fail" {
		t.Errorf("inspection summary = %+v, want the topmost header, untrusted", v)
	}
	if len(v.Untrusted) != 3 {
		t.Errorf("untrusted = %d, want all 3", len(v.Untrusted))
	}
	v = Summarize(h, "mx.outlook.example")
	if v.Trusted || v.SPF != "" || v.DKIM != "" || v.DMARC != "" || v.ARC != "" || len(v.Results) != 0 {
		t.Errorf("an unmatched authserv-id produced verdicts: %+v", v)
	}
}

func TestReadHeaderBareLF(t *testing.T) {
	crlf := header(t, forged)
	lf := header(t, strings.ReplaceAll(forged, "\r\n", "\n"))
	a, b := Summarize(crlf, "mx.google.com"), Summarize(lf, "mx.google.com")
	if a.SPF != b.SPF || a.DMARC != b.DMARC || len(a.Untrusted) != len(b.Untrusted) {
		t.Errorf("LF and CRLF differ: %+v vs %+v", a, b)
	}
	// A header block without the blank line (e.g. pasted) still reads.
	h := header(t, "Authentication-Results: x.example; spf=pass")
	if Summarize(h, "x.example").SPF != "pass" {
		t.Error("header without final newline not read")
	}
}

func TestSummarizeCorpusFileEndToEnd(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "corpus", "microsoft-163-forefront.eml"))
	if err != nil {
		t.Fatal(err)
	}
	v := Summarize(header(t, string(b)), TrustNoID)
	if v.Spam == nil || v.Spam.Microsoft == nil || v.Spam.Microsoft.SFV != "NSPM" || *v.Spam.Microsoft.SCL != 1 {
		t.Fatalf("spam signals = %+v", v.Spam)
	}
	if v.ARCChain != nil {
		t.Errorf("ARC chain on a message without ARC: %+v", v.ARCChain)
	}
	b, err = os.ReadFile(filepath.Join("testdata", "corpus", "gmail-arc-forward-tr-ee.eml"))
	if err != nil {
		t.Fatal(err)
	}
	v = Summarize(header(t, string(b)), "mx.google.com")
	if v.ARCChain == nil || v.ARCChain.Instances != 2 || !v.ARCChain.Valid {
		t.Errorf("ARC chain = %+v", v.ARCChain)
	}
}
