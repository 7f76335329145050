package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/otpprobe/otpprobe/lab/dnsserver"
)

func runInspect(t *testing.T, stdin string, args ...string) (int, map[string]json.RawMessage, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := inspect(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	if code != exitOK {
		return code, nil, errb.String()
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	return code, m, errb.String()
}

// inspectKeys are the top-level keys the issue specifies.
var inspectKeys = []string{"arc", "authentication_results", "dsn", "errors", "spam_signals", "summary"}

type inspectSummary struct{ SPF, DKIM, DMARC, ARC string }

// Every corpus file (headers from Gmail, Microsoft, Yahoo, Fastmail,
// rspamd, OpenDKIM…, bounces, spam reports) inspects without failing, and
// the summary is what its sidecar expects of it.
func TestInspectCorpus(t *testing.T) {
	root := filepath.Join("..", "..", "verify", "testdata")
	type corpusCase struct {
		File       string `json:"-"`
		AuthservID string `json:"authserv_id"`
		Field      string `json:"field"`
		Want       inspectSummary
		ARC        *struct {
			Instances int    `json:"instances"`
			CV        string `json:"cv"`
			Valid     bool   `json:"valid"`
		} `json:"arc"`
		KnownMiss string `json:"known_miss"`
	}
	sidecars, err := filepath.Glob(filepath.Join(root, "corpus", "*.json"))
	if err != nil || len(sidecars) == 0 {
		t.Fatalf("no corpus sidecars: %v", err)
	}
	var cases []corpusCase
	for _, p := range sidecars {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var c corpusCase
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if c.KnownMiss != "" {
			continue // listed in the corpus README as still read wrong
		}
		c.File = strings.TrimSuffix(filepath.Base(p), ".json") + ".eml"
		cases = append(cases, c)
	}
	checked := 0
	for _, c := range cases {
		t.Run("corpus/"+c.File, func(t *testing.T) {
			code, m, stderr := runInspect(t, "", "--authserv-id", c.AuthservID, filepath.Join(root, "corpus", c.File))
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			checkKeys(t, m)
			if c.Field != "" {
				return // the case is about another header than Authentication-Results
			}
			var got inspectSummary
			json.Unmarshal(m["summary"], &got)
			if got != c.Want {
				t.Errorf("summary %+v, want %+v", got, c.Want)
			}
			if c.ARC != nil {
				var arc struct {
					Instances int    `json:"instances"`
					CV        string `json:"cv"`
					Valid     bool   `json:"valid"`
				}
				json.Unmarshal(m["arc"], &arc)
				if arc.Instances != c.ARC.Instances || arc.CV != c.ARC.CV || arc.Valid != c.ARC.Valid {
					t.Errorf("arc %+v, want %+v", arc, *c.ARC)
				}
			}
			checked++
		})
	}
	for _, dir := range []string{"dsn", "spam"} {
		files, _ := filepath.Glob(filepath.Join(root, dir, "*.eml"))
		if len(files) == 0 {
			t.Fatalf("no files in %s", dir)
		}
		for _, f := range files {
			t.Run(dir+"/"+filepath.Base(f), func(t *testing.T) {
				code, m, stderr := runInspect(t, "", f)
				if code != exitOK {
					t.Fatalf("exit %d: %s", code, stderr)
				}
				checkKeys(t, m)
				if dir == "dsn" && string(m["dsn"]) == "null" {
					t.Error("bounce read without a dsn")
				}
				if dir == "spam" && string(m["spam_signals"]) == "{}" {
					t.Error("no spam signals")
				}
			})
		}
	}
	if len(cases) < 60 || checked < 50 {
		t.Errorf("inspected %d corpus cases, %d summaries checked; want at least 60 and 50", len(cases), checked)
	}
}

func checkKeys(t *testing.T, m map[string]json.RawMessage) {
	t.Helper()
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if strings.Join(keys, ",") != strings.Join(inspectKeys, ",") {
		t.Errorf("keys %v, want %v", keys, inspectKeys)
	}
}

// Odd input is reported, never fatal; only unreadable input fails.
func TestInspectOddInput(t *testing.T) {
	for name, in := range map[string]string{
		"empty":          "",
		"binary":         "\x00\x01\xff\xfe",
		"no colon":       "this is not a header\n",
		"quoted":         "> Authentication-Results: mx.google.com;\n>   dkim=pass header.i=@x.test\n",
		"bad authres":    "Authentication-Results: ;;;(((\n\nbody\n",
		"bad arc":        "ARC-Seal: i=x\nARC-Message-Signature: garbage\n",
		"fake dsn":       "Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\n",
		"only separator": "\n\n\n",
	} {
		t.Run(name, func(t *testing.T) {
			code, m, stderr := runInspect(t, in, "-")
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			checkKeys(t, m)
		})
	}
	code, m, _ := runInspect(t, "> Authentication-Results: mx.google.com;\n>   dkim=pass header.i=@x.test\n", "--authserv-id", "mx.google.com", "-")
	var sum inspectSummary
	json.Unmarshal(m["summary"], &sum)
	if code != exitOK || sum.DKIM != "pass" {
		t.Errorf("quoted paste: %s", m["summary"])
	}
	// iCloud's one header per milter, each with its host as id: the ids
	// are a set, given repeated or comma-separated, with wildcards.
	icloud := filepath.Join("..", "..", "verify", "testdata", "corpus", "icloud-split-headers.eml")
	code, m, _ = runInspect(t, "", "--authserv-id", "mx.example", "--authserv-id", "spf.icloud.com,*.me.com", icloud)
	sum = inspectSummary{}
	json.Unmarshal(m["summary"], &sum)
	if code != exitOK || sum.SPF != "pass" || sum.DKIM != "pass" || sum.DMARC != "pass" {
		t.Errorf("icloud with a wildcard id: exit %d, %s", code, m["summary"])
	}
	if code, _, stderr := runInspect(t, "", "--authserv-id", "*.com", icloud); code != exitUsage || !strings.Contains(stderr, `"*.com"`) {
		t.Errorf("a top-level wildcard: exit %d %q, want %d naming it", code, stderr, exitUsage)
	}
	if code, _, stderr := runInspect(t, "", t.TempDir()); code != exitRuntime || stderr == "" {
		t.Errorf("a directory: exit %d %q, want %d and a message", code, stderr, exitRuntime)
	}
	if code, _, stderr := runInspect(t, "", filepath.Join(t.TempDir(), "missing.eml")); code != exitRuntime || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing file: exit %d %q", code, stderr)
	}
	if code, _, _ := runInspect(t, ""); code != exitUsage {
		t.Errorf("no file: exit %d, want %d", code, exitUsage)
	}
}

// With --resolver, inspect checks ARC signatures (and re-verifies DKIM)
// against a real DNS server: the ValiMail suite's sealed messages and key.
func TestInspectResolverARC(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "verify", "testdata", "arc", "valimail-validation.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var suite struct {
		Tests map[string]struct {
			Message string `yaml:"message"`
			CV      string `yaml:"cv"`
		} `yaml:"tests"`
		TXT map[string]string `yaml:"txt-records"`
	}
	if err := yaml.Unmarshal(raw, &suite); err != nil {
		t.Fatal(err)
	}
	srv, err := dnsserver.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	for name, v := range suite.TXT {
		if err := srv.Add(fmt.Sprintf("%s. 300 IN TXT %q", name, v)); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	for name, tc := range suite.Tests {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(dir, name+".eml")
			os.WriteFile(f, []byte(tc.Message), 0o600)
			code, m, stderr := runInspect(t, "", "--resolver", srv.Addr(), f)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var arc struct {
				CV       string `json:"cv"`
				Verified bool   `json:"verified"`
				Error    string `json:"error"`
			}
			json.Unmarshal(m["arc"], &arc)
			if arc.CV != strings.ToLower(tc.CV) || arc.Verified != (tc.CV == "Pass") {
				t.Errorf("arc %+v, want cv=%s", arc, tc.CV)
			}
		})
	}
}
