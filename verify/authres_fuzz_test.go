package verify

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// seedFiles adds every file of a testdata directory to a fuzz corpus.
func seedFiles(f *testing.F, dir string, add func([]byte)) {
	f.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", dir, "*.eml"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seeds in %s: %v", dir, err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		add(b)
	}
}

func FuzzAuthResults(f *testing.F) {
	seedFiles(f, "corpus", func(b []byte) {
		h, err := ReadHeader(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, k := range []string{"Authentication-Results", "ARC-Authentication-Results", "X-MS-Exchange-Authentication-Results"} {
			for _, v := range h.Values(k) {
				f.Add(v)
			}
		}
	})
	for _, s := range []string{"", ";", "(", "\"", "a (b (c) \\) d) 1; m/1 = (x) r p . (y) k = \"v\\\"\"", "x; a=b; =; ==; (;=)", "=?utf-8?B?c3BmPXBhc3M7?=", "=?x?q?=3D?= =?utf-8?b?==?=", "h spfDomain=a spfResult=pass dkim=pass dmarc=fail(p=none (x)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		ar, err := ParseAuthResults(value)
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Fatalf("multi-line error %q", err)
		}
		for _, r := range ar.Results {
			if r.Method == "" || r.Result == "" {
				t.Fatalf("empty method or result in %+v", r)
			}
			if r.Method != strings.ToLower(r.Method) || r.Result != strings.ToLower(r.Result) {
				t.Fatalf("not lower case: %+v", r)
			}
			for k := range r.Props {
				if k == "" || k == "reason" {
					t.Fatalf("bad property key %q", k)
				}
			}
		}
		// Valid UTF-8 in, valid UTF-8 out (we never split a rune: all
		// delimiters are ASCII).
		if utf8.ValidString(value) {
			for _, r := range ar.Results {
				if !utf8.ValidString(r.Comment) || !utf8.ValidString(r.Reason) {
					t.Fatalf("invalid UTF-8 produced from %q", value)
				}
			}
		}
		// Parsing is deterministic and summaries never panic.
		again, _ := ParseAuthResults(value)
		if len(again.Results) != len(ar.Results) {
			t.Fatal("not deterministic")
		}
		SummarizeDKIM(ar, "example.com")
	})
}
