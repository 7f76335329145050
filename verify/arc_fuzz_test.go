package verify

import (
	"bytes"
	"testing"
)

func FuzzARC(f *testing.F) {
	seedFiles(f, "corpus", func(b []byte) {
		if bytes.Contains(b, []byte("ARC-Seal")) {
			f.Add(b)
		}
	})
	f.Add([]byte(arcSet(2, "pass") + arcSet(1, "none") + "\n"))
	f.Add([]byte("ARC-Seal: i=99999999999999999999; cv=none\nARC-Seal: i=-1\nARC-Message-Signature: ;;;=\n\n"))
	f.Fuzz(func(t *testing.T, block []byte) {
		h, err := ReadHeader(bytes.NewReader(block))
		if err != nil && h.Len() == 0 {
			return
		}
		c := ParseARC(h)
		if c.Valid && (c.CV != "pass" || c.Error != "" || c.Instances != len(c.Sets) || c.Instances > maxARCInstances) {
			t.Fatalf("valid chain with inconsistent fields: %+v", c)
		}
		if !c.Valid && c.Instances > 0 && c.CV != "fail" {
			t.Fatalf("invalid chain with cv=%q", c.CV)
		}
		for i, s := range c.Sets {
			if i > 0 && s.Instance <= c.Sets[i-1].Instance {
				t.Fatalf("sets out of order: %+v", c.Sets)
			}
		}
	})
}
