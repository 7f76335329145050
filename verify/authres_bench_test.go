package verify

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func benchHeader(b *testing.B, file, field string) string {
	raw, err := os.ReadFile(filepath.Join("testdata", "corpus", file))
	if err != nil {
		b.Fatal(err)
	}
	h, err := ReadHeader(bytes.NewReader(raw))
	if err != nil {
		b.Fatal(err)
	}
	return h.Get(field)
}

func benchParse(b *testing.B, value string) {
	b.ReportAllocs()
	b.SetBytes(int64(len(value)))
	n := 0
	for b.Loop() {
		if _, err := ParseAuthResults(value); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "parses/s")
}

// A typical Gmail header: two DKIM results, SPF with a long comment,
// DMARC with a policy comment.
func BenchmarkParseGmail(b *testing.B) {
	benchParse(b, benchHeader(b, "gmail-fastmail-two-dkim.eml", "Authentication-Results"))
}

// A typical Microsoft 365 header: no authserv-id, tenant markers,
// comments, compauth.
func BenchmarkParseMicrosoft(b *testing.B) {
	benchParse(b, benchHeader(b, "microsoft-163-forefront.eml", "Authentication-Results"))
}

// The whole per-message path the engine runs: header block to Verdicts
// (trust, summaries, ARC structure, spam signals).
func BenchmarkSummarizeGmailARC(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("testdata", "corpus", "gmail-arc-dmarc-fail-zone-ee.eml"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		h, err := ReadHeader(bytes.NewReader(raw))
		if err != nil {
			b.Fatal(err)
		}
		if v := Summarize(h, "mx.google.com"); !v.Trusted {
			b.Fatal("not trusted")
		}
	}
}

func benchHeaderBlock(b *testing.B, file string) string {
	raw, err := os.ReadFile(filepath.Join("testdata", "corpus", file))
	if err != nil {
		b.Fatal(err)
	}
	return string(raw)
}
