package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// arcSet writes one synthetic ARC set; the structure checks never look at
// signatures, so b= and bh= are placeholders.
func arcSet(i int, cv string) string {
	return fmt.Sprintf("ARC-Seal: i=%d; a=rsa-sha256; t=1700000000; cv=%s; d=relay.example; s=arc; b=AAAA\n"+
		"ARC-Message-Signature: i=%d; a=rsa-sha256; c=relaxed/relaxed; d=relay.example; s=arc; h=from:to:subject; bh=BBBB; b=CCCC\n"+
		"ARC-Authentication-Results: i=%d; relay.example; spf=pass smtp.mailfrom=a@example.com\n", i, cv, i, i)
}

func TestParseARCRealGmailChain(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "corpus", "gmail-arc-dmarc-fail-zone-ee.eml"))
	if err != nil {
		t.Fatal(err)
	}
	c := ParseARC(header(t, string(b)))
	if c.Instances != 2 || c.CV != "pass" || !c.Valid || c.Verified || c.Error != "" {
		t.Fatalf("chain = %d %s %v %v %q", c.Instances, c.CV, c.Valid, c.Verified, c.Error)
	}
	s1, s2 := c.Sets[0], c.Sets[1]
	if s1.Instance != 1 || s1.CV != "none" || s2.CV != "pass" {
		t.Errorf("sets = %+v / %+v", s1, s2)
	}
	if s1.AAR.AuthservID != "mx.google.com" || len(s1.AAR.Results) != 4 || s1.AAR.Results[3].Result != "pass" {
		t.Errorf("i=1 AAR = %+v", s1.AAR)
	}
	if s2.AMS["d"] != "google.com" || s2.AMS["s"] != "arc-20160816" || s2.AMS["h"] != "subject:to:from:message-id:date:dkim-signature:dkim-signature:delivered-to" {
		t.Errorf("AMS tags = %v", s2.AMS)
	}
	if b := s2.AS["b"]; strings.ContainsAny(b, " \t\r\n") || !strings.HasPrefix(b, "0p6i/ja3") || !strings.HasSuffix(b, "IQ7Q==") {
		t.Errorf("AS b= not unfolded: %q", b)
	}
	if s2.Raw.AS == "" || s2.Raw.AMS == "" || s2.Raw.AAR == "" {
		t.Error("raw values not kept for the verifier")
	}
}

func TestParseARCMicrosoftAAR(t *testing.T) {
	// Exchange Online's form carries a version after the authserv-id.
	block := arcSet(1, "none")
	block = strings.Replace(block, "i=1; relay.example; spf=pass smtp.mailfrom=a@example.com",
		"i=1; mx.microsoft.com 1; spf=pass\n smtp.mailfrom=oracle.com; dmarc=pass action=none header.from=oracle.com;\n dkim=pass header.d=oracle.com; arc=none", 1)
	c := ParseARC(header(t, block+"\n"))
	if !c.Valid || c.CV != "pass" {
		t.Fatalf("chain = %+v", c)
	}
	aar := c.Sets[0].AAR
	if aar.AuthservID != "mx.microsoft.com" || aar.Version != "1" || len(aar.Results) != 4 || aar.Results[3].Method != "arc" {
		t.Errorf("AAR = %+v", aar)
	}
}

func TestParseARCStructure(t *testing.T) {
	tests := []struct {
		name      string
		block     string
		instances int
		cv        string
		valid     bool
		errPart   string
	}{
		{"no ARC", "From: a@example.com\n", 0, "none", false, ""},
		{"one set", arcSet(1, "none"), 1, "pass", true, ""},
		{"three sets, newest first", arcSet(3, "pass") + arcSet(2, "pass") + arcSet(1, "none"), 3, "pass", true, ""},
		{"gap", arcSet(3, "pass") + arcSet(1, "none"), 3, "fail", false, "ARC instance 2 is missing"},
		{"starts at 2", arcSet(2, "pass"), 2, "fail", false, "ARC instance 1 is missing"},
		{"cv=pass at i=1", arcSet(1, "pass"), 1, "fail", false, "instance 1 has cv=pass, want none"},
		{"cv=none after i=1", arcSet(2, "none") + arcSet(1, "none"), 2, "fail", false, "instance 2 has cv=none, want pass"},
		{"cv=fail stops the chain", arcSet(3, "pass") + arcSet(2, "fail") + arcSet(1, "none"), 3, "fail", false, "instance 2 sealed the chain with cv=fail"},
		{"duplicate seal", arcSet(1, "none") + "ARC-Seal: i=1; cv=none; d=x; s=y; b=Z\n", 1, "fail", false, "instance 1 has more than one ARC-Seal"},
		{"missing AMS", "ARC-Seal: i=1; a=rsa-sha256; cv=none; d=x; s=y; b=Z\nARC-Authentication-Results: i=1; x; none\n", 1, "fail", false, "instance 1 has no ARC-Message-Signature"},
		{"seal without i", "ARC-Seal: cv=none; d=x; s=y; b=Z\n", 0, "", false, ""},
		{"AAR without i", arcSet(1, "none") + "ARC-Authentication-Results: relay.example; spf=pass\n", 1, "fail", false, "does not start with i="},
		{"bad instance", arcSet(1, "none") + "ARC-Seal: i=x; cv=none; d=x; s=y; b=Z\n", 1, "fail", false, `invalid instance i="x"`},
		{"malformed tag", strings.Replace(arcSet(1, "none"), "t=1700000000;", "t1700000000;", 1), 1, "fail", false, "malformed tag"},
		{"more than 50", manySets(51), 51, "fail", false, "51 ARC sets, more than 50"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ParseARC(header(t, tt.block+"\n"))
			if tt.name == "seal without i" {
				// No usable set at all: reported, not a panic.
				if c.Valid || c.CV != "fail" || !strings.Contains(c.Error, "ARC-Seal has no i= tag") {
					t.Errorf("chain = %+v", c)
				}
				return
			}
			if c.Instances != tt.instances || c.CV != tt.cv || c.Valid != tt.valid {
				t.Errorf("chain = %d/%s/%v (%s), want %d/%s/%v", c.Instances, c.CV, c.Valid, c.Error, tt.instances, tt.cv, tt.valid)
			}
			if !strings.Contains(c.Error, tt.errPart) || (tt.errPart == "" && c.Error != "") {
				t.Errorf("error %q, want it to contain %q", c.Error, tt.errPart)
			}
		})
	}
}

func manySets(n int) string {
	var b strings.Builder
	for i := n; i >= 1; i-- {
		cv := "pass"
		if i == 1 {
			cv = "none"
		}
		b.WriteString(arcSet(i, cv))
	}
	return b.String()
}

func TestParseARCKeepsAARParseErrorsApart(t *testing.T) {
	block := strings.Replace(arcSet(1, "none"), "spf=pass smtp.mailfrom=a@example.com", "spf=pass (unterminated", 1)
	c := ParseARC(header(t, block+"\n"))
	if !c.Valid || len(c.ParseErrors) != 1 || !strings.Contains(c.ParseErrors[0], "unterminated comment") {
		t.Errorf("chain = %+v", c)
	}
}

type refusingVerifier struct{ err error }

func (v refusingVerifier) VerifyARC(_ context.Context, _ io.Reader, _ ARCChain) error { return v.err }

func TestVerifyARCSeam(t *testing.T) {
	c := ParseARC(header(t, arcSet(1, "none")+"\n"))
	got := VerifyARC(context.Background(), refusingVerifier{errors.New("ARC-Seal i=1: signature did not verify")}, strings.NewReader(""), c)
	if got.Valid || got.CV != "fail" || got.Verified || !strings.Contains(got.Error, "did not verify") {
		t.Errorf("failed verification = %+v", got)
	}
	got = VerifyARC(context.Background(), refusingVerifier{}, strings.NewReader(""), c)
	if !got.Valid || got.CV != "pass" || !got.Verified {
		t.Errorf("passed verification = %+v", got)
	}
	broken := ParseARC(header(t, arcSet(2, "pass")+"\n"))
	if got := VerifyARC(context.Background(), refusingVerifier{}, strings.NewReader(""), broken); got.Verified {
		t.Error("a structurally broken chain was handed to the verifier")
	}
}

func TestParseTagList(t *testing.T) {
	tags, err := ParseTagList(" i=1; a=rsa-sha256;\r\n\tb=ab cd\r\n\t ef==; h = from : to ; d=example.com ;")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"i": "1", "a": "rsa-sha256", "b": "abcdef==", "h": "from:to", "d": "example.com"}
	for k, v := range want {
		if tags[k] != v {
			t.Errorf("%s = %q, want %q", k, tags[k], v)
		}
	}
	if _, err := ParseTagList("i=1; i=2"); err == nil || !strings.Contains(err.Error(), `duplicate tag "i"`) {
		t.Errorf("duplicate: %v", err)
	}
}
