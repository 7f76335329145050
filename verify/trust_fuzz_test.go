package verify

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzTrustGroup checks the trust rule's invariants on any header block
// and id list: the group is a run of headers starting at the topmost
// trusted one, every member has a trusted id, and every header is either
// in the group or reported untrusted.
func FuzzTrustGroup(f *testing.F) {
	seedFiles(f, "corpus", func(b []byte) { f.Add(b, "mx.google.com, *.me.com, none") })
	f.Add([]byte("Authentication-Results: a.example/1; spf=pass\nAuthentication-Results: a.example; spf=fail\n\n"), "a.example")
	f.Add([]byte("Authentication-Results: spf=pass\nAuthentication-Results: b; dmarc=pass\n\n"), "none,*.b.example")
	f.Fuzz(func(t *testing.T, block []byte, ids string) {
		h, err := ReadHeader(bytes.NewReader(block))
		if err != nil {
			return
		}
		set := MustAuthservIDs(ids)
		ev := Evaluate(h, ids)
		if len(ev.Group) > 0 && ev.Group[0] != ev.Trusted {
			t.Fatalf("group %v does not start at the trusted header %d", ev.Group, ev.Trusted)
		}
		for i, g := range ev.Group {
			if i > 0 && g != ev.Group[i-1]+1 {
				t.Fatalf("group %v is not a run", ev.Group)
			}
			if !set.Match(ev.Headers[g].AuthservID) || !ev.Headers[g].Trusted {
				t.Fatalf("header %d in the group has id %q, not in %q", g, ev.Headers[g].AuthservID, ids)
			}
		}
		v := Summarize(h, ids)
		if len(v.Untrusted)+len(ev.Group) != len(ev.Headers) {
			t.Fatalf("%d untrusted + %d trusted != %d headers", len(v.Untrusted), len(ev.Group), len(ev.Headers))
		}
		if v.Trusted != (len(ev.Group) > 0) {
			t.Fatalf("trusted = %v with group %v", v.Trusted, ev.Group)
		}
		if strings.TrimSpace(ids) != "" && !v.Trusted && (v.SPF != "" || v.DKIM != "" || v.DMARC != "") {
			t.Fatalf("verdicts from no trusted header: %+v", v)
		}
	})
}
