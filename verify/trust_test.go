package verify

import (
	"fmt"
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
	if ev.Trusted != 0 || len(ev.Group) != 1 || !ev.Headers[0].Trusted {
		t.Fatalf("trusted = %d, group %v", ev.Trusted, ev.Group)
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

// kernel.org, Proton and milter setups write one header per method, all
// with the same authserv-id: the group merges them.
func TestTrustGroupMergesOneHeaderPerMethod(t *testing.T) {
	block := "Authentication-Results: smtp.subspace.kernel.org; dmarc=pass (p=none dis=none) header.from=kernel.org\n" +
		"Authentication-Results: smtp.subspace.kernel.org; spf=pass smtp.mailfrom=kernel.org\n" +
		"Authentication-Results: smtp.subspace.kernel.org;\n\tdkim=pass (2048-bit key) header.d=kernel.org header.i=@kernel.org header.b=\"aB1cD2\"\n" +
		"Authentication-Results: smtp.subspace.kernel.org; arc=none smtp.client-ip=10.30.226.201\n" +
		"Authentication-Results: smtp.subspace.kernel.org; dkim=pass (2048-bit key) header.d=kernel.org header.i=@kernel.org header.b=\"aB1cD2\"\n" +
		"Authentication-Results: mx.sender.example; spf=fail smtp.mailfrom=kernel.org\n" +
		"Authentication-Results: smtp.subspace.kernel.org; dmarc=pass header.from=evil.example\n\n"
	h := header(t, block)
	ev := Evaluate(h, "smtp.subspace.kernel.org")
	if want := []int{0, 1, 2, 3, 4}; fmt.Sprint(ev.Group) != fmt.Sprint(want) {
		t.Fatalf("group = %v, want %v", ev.Group, want)
	}
	ar, _ := ev.TrustedResults()
	if len(ar.Results) != 4 {
		t.Errorf("merged results = %+v, want 4 (the repeated dkim folded)", ar.Results)
	}
	v := Summarize(h, "smtp.subspace.kernel.org")
	if [4]string{v.SPF, v.DKIM, v.DMARC, v.ARC} != [4]string{"pass", "pass", "pass", "none"} {
		t.Errorf("verdicts = %s/%s/%s/%s", v.SPF, v.DKIM, v.DMARC, v.ARC)
	}
	// Below the first header of another id nothing is trusted, even with
	// the receiver's id.
	if len(v.Untrusted) != 2 || v.Untrusted[1].Index != 6 {
		t.Errorf("untrusted = %+v", v.Untrusted)
	}
}

// The group ends before a header that contradicts it, and after one
// that gave the whole verdict: a same-id header below those is the
// sender's.
func TestTrustGroupStopsAtForgedHeaders(t *testing.T) {
	perMethod := "Authentication-Results: mx.example.org; spf=fail smtp.mailfrom=bank.example\n" +
		"Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=bank.example\n" +
		"Authentication-Results: mx.example.org; dkim=pass header.d=bank.example\n\n"
	if ev := Evaluate(header(t, perMethod), "mx.example.org"); fmt.Sprint(ev.Group) != "[0]" {
		t.Errorf("contradicting spf: group = %v, want [0]", ev.Group)
	}
	whole := "Authentication-Results: mx.example.org; spf=fail smtp.mailfrom=bank.example; dkim=fail header.d=bank.example header.b=AAAA; dmarc=fail header.from=bank.example\n" +
		"Authentication-Results: mx.example.org; dkim=pass header.d=bank.example header.b=BBBB\n\n"
	v := Summarize(header(t, whole), "mx.example.org")
	if v.DKIM != "fail" || len(v.Untrusted) != 1 {
		t.Errorf("forged dkim below a whole verdict: dkim=%s, %d untrusted", v.DKIM, len(v.Untrusted))
	}
}

// iCloud writes one id per method; OpenDKIM/OpenDMARC with
// AuthservIDWithJobID write host/JOBID.
func TestTrustGroupSeveralIDs(t *testing.T) {
	block := "Authentication-Results: dmarc.icloud.com; dmarc=pass header.from=example.com\n" +
		"Authentication-Results: dkim-verifier.icloud.com; dkim=pass (2048-bit key) header.d=example.com header.i=@example.com header.b=Xy\n" +
		"Authentication-Results: spf.icloud.com; spf=pass (spf.icloud.com: domain of a@example.com designates 192.0.2.1 as permitted sender) smtp.mailfrom=a@example.com\n\n"
	for _, ids := range []string{"*.icloud.com", "dmarc.icloud.com, dkim-verifier.icloud.com spf.icloud.com"} {
		v := Summarize(header(t, block), ids)
		if !v.Trusted || [3]string{v.SPF, v.DKIM, v.DMARC} != [3]string{"pass", "pass", "pass"} || len(v.Untrusted) != 0 {
			t.Errorf("%q: %+v", ids, v)
		}
	}
	if v := Summarize(header(t, block), "spf.icloud.com"); v.SPF != "pass" || v.DMARC != "" || len(v.Untrusted) != 2 {
		t.Errorf("one of the ids: spf=%s dmarc=%s, %d untrusted; want only spf.icloud.com's header trusted", v.SPF, v.DMARC, len(v.Untrusted))
	}
	jobs := "Authentication-Results: mail.example.net/4QhS1x0Abz; dkim=pass header.d=example.com header.b=Q1\n" +
		"Authentication-Results: mail.example.net/4QhS1x0Abz; dmarc=pass (p=reject dis=none) header.from=example.com\n" +
		"Authentication-Results: mail.example.net/4QhS1x0Abz; spf=pass smtp.mailfrom=example.com\n\n"
	if v := Summarize(header(t, jobs), "mail.example.net"); [3]string{v.SPF, v.DKIM, v.DMARC} != [3]string{"pass", "pass", "pass"} {
		t.Errorf("host/JOBID: %s/%s/%s", v.SPF, v.DKIM, v.DMARC)
	}
}

func TestParseAuthservIDs(t *testing.T) {
	ids, err := ParseAuthservIDs(" mx.google.com,*.Yahoo.com  none ")
	if err != nil || ids.String() != "none, mx.google.com, *.yahoo.com" {
		t.Fatalf("%q, %v", ids, err)
	}
	for _, bad := range []string{"*", "*.com", "a;b", "x(y)", "a=b", "*.x.com/1"} {
		if _, err := ParseAuthservIDs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if !MustAuthservIDs("").Empty() || MustAuthservIDs("none").Empty() {
		t.Error("Empty")
	}
}
