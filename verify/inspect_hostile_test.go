package verify

import (
	"context"
	"strings"
	"testing"
)

// hostileInputs (10 MB of header; 2 MB under -race) are header blocks built to make a reader slow or
// greedy: each must still give a result and its errors, in time linear
// in its size (a quadratic step would take minutes at 10 MB and trip the
// test timeout).
func hostileInputs() map[string]string {
	big := 10 << 20
	if raceEnabled {
		big = 2 << 20
	}
	var many strings.Builder
	for i := 0; i < 10000; i++ {
		many.WriteString("Authentication-Results: mx.example.org; dkim=pass header.d=example.org header.b=")
		many.WriteString(strings.Repeat("A", i%7+1))
		many.WriteString(";\r\n")
	}
	return map[string]string{
		"10k-fields":      many.String() + "\r\n",
		"huge-value":      "Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=" + strings.Repeat("a", big) + "\r\n\r\n",
		"huge-header":     strings.Repeat("X-Filler: "+strings.Repeat("x", 70)+"\r\n", big/82) + "Authentication-Results: mx.example.org; spf=pass\r\n\r\n",
		"deep-comment":    "Authentication-Results: mx.example.org; dkim=fail " + strings.Repeat("(", 1<<20) + strings.Repeat(")", 1<<19) + "\r\n\r\n",
		"many-results":    "Authentication-Results: mx.example.org" + strings.Repeat("; spf=pass", 20000) + "\r\n\r\n",
		"many-missing-sc": "Authentication-Results: mx.example.org; " + strings.Repeat("spf=pass ", 20000) + "\r\n\r\n",
		"many-encoded":    "Authentication-Results: " + strings.Repeat("=?utf-8?q?spf=3Dpass;?= ", 10000) + "\r\n\r\n",
		"invalid-utf8":    "Authentication-Results: mx.example.org; spf=pass (\xff\xfe\xc3) smtp.mailfrom=\xff@\xfe; dkim=\xc3\x28 header.d=\xe2\x82\r\n\r\n",
		"truncated":       "Authentication-Results: mx.example.org; dkim=pass (\"unterminated header.b=\"abc",
	}
}

func TestInspectHostileInput(t *testing.T) {
	for name, in := range hostileInputs() {
		t.Run(name, func(t *testing.T) {
			out := Inspect(context.Background(), []byte(in), InspectOptions{AuthservID: "mx.example.org, none"})
			if len(out.AuthenticationResults) == 0 {
				t.Fatalf("no header read; errors %q", out.Errors)
			}
			if len(out.Errors) > 10000+16 {
				t.Errorf("%d errors: the list must stay bounded", len(out.Errors))
			}
		})
	}
}

// BenchmarkInspect1MB is `otpprobe inspect` on a 1 MB header block: a
// real Gmail header followed by 1 MB of Authentication-Results from
// other hops, as a mailing-list archive or a hostile sender could make.
func BenchmarkInspect1MB(b *testing.B) {
	raw := []byte(benchHeaderBlock(b, "gmail-arc-dmarc-fail-zone-ee.eml"))
	var filler strings.Builder
	for filler.Len() < 1<<20 {
		filler.WriteString("Authentication-Results: hop.example.net; spf=pass (hop.example.net: domain of a@example.com designates 192.0.2.1 as permitted sender) smtp.mailfrom=a@example.com; dkim=pass header.d=example.com header.s=s1 header.b=abcd\r\n")
	}
	i := strings.Index(string(raw), "\r\n\r\n")
	if i < 0 {
		i = strings.Index(string(raw), "\n\n")
	}
	msg := append([]byte(string(raw[:i])+"\r\n"+filler.String()), raw[i:]...)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		out := Inspect(context.Background(), msg, InspectOptions{AuthservID: "mx.google.com"})
		if out.Summary.DMARC != "fail" {
			b.Fatalf("summary %+v", out.Summary)
		}
	}
}
