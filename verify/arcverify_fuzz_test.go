package verify

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// valimailSeeds adds the sealed messages of the ValiMail suite and returns
// its key records.
func valimailSeeds(f *testing.F) map[string]string {
	raw, err := os.ReadFile("testdata/arc/valimail-validation.yml")
	if err != nil {
		f.Fatal(err)
	}
	var suite struct {
		Tests map[string]struct {
			Message string `yaml:"message"`
		} `yaml:"tests"`
		TXT map[string]string `yaml:"txt-records"`
	}
	if err := yaml.Unmarshal(raw, &suite); err != nil {
		f.Fatal(err)
	}
	for _, tc := range suite.Tests {
		f.Add([]byte(tc.Message))
	}
	return suite.TXT
}

// FuzzARCVerify runs the signature checks over mutated sealed messages
// with the suite's real key: whatever the input, no panic, and a chain
// reported verified is one whose structure was intact.
func FuzzARCVerify(f *testing.F) {
	txt := valimailSeeds(f)
	f.Add([]byte(strings.ReplaceAll(sealTestMessage, "\r\n", "\n")))
	v := ARCValidator{Lookup: staticTXT(txt)}
	f.Fuzz(func(t *testing.T, msg []byte) {
		c, err := VerifyARCMessage(context.Background(), v, msg)
		if err != nil {
			return
		}
		if c.Verified && (!c.Valid || c.CV != "pass" || c.Instances == 0) {
			t.Fatalf("verified chain with inconsistent fields: %+v", c)
		}
	})
}

// FuzzInspect feeds anything to Inspect (the postmortem command's core):
// it must never fail, always give every section, and produce JSON.
func FuzzInspect(f *testing.F) {
	txt := valimailSeeds(f)
	seedFiles(f, "corpus", func(b []byte) { f.Add(b) })
	seedFiles(f, "dsn", func(b []byte) { f.Add(b) })
	f.Add([]byte("> Authentication-Results: mx.google.com; dkim=pass\n> From: a@b.test\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, lookup := range []LookupTXT{nil, staticTXT(txt)} {
			in := Inspect(context.Background(), raw, InspectOptions{AuthservID: "mx.google.com", Lookup: lookup})
			if in.AuthenticationResults == nil || in.Errors == nil || in.ARC.CV == "" {
				t.Fatalf("incomplete inspection: %+v", in)
			}
			if _, err := json.Marshal(in); err != nil {
				t.Fatal(err)
			}
		}
	})
}
