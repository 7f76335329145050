package dnscheck

import (
	"cmp"
	"slices"
)

// Change is one RRset that differs between two snapshots (Report.Records).
// Before or After is nil when the checks did not read that RRset then,
// e.g. an include that was added or removed.
type Change struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Before *RRset `json:"before,omitempty"`
	After  *RRset `json:"after,omitempty"`
}

// Diff returns the RRsets that changed from before to after, sorted by
// name and type. Snapshots hold no TTLs, so only real changes appear.
func Diff(before, after []RRset) []Change {
	type key struct{ name, typ string }
	index := func(rs []RRset) map[key]*RRset {
		m := make(map[key]*RRset, len(rs))
		for i := range rs {
			m[key{rs[i].Name, rs[i].Type}] = &rs[i]
		}
		return m
	}
	b, a := index(before), index(after)
	var out []Change
	for k, old := range b {
		if cur, ok := a[k]; !ok || !sameRRset(*old, *cur) {
			out = append(out, Change{Name: k.name, Type: k.typ, Before: old, After: cur})
		}
	}
	for k, cur := range a {
		if _, ok := b[k]; !ok {
			out = append(out, Change{Name: k.name, Type: k.typ, After: cur})
		}
	}
	slices.SortFunc(out, func(x, y Change) int {
		return cmp.Or(cmp.Compare(x.Name, y.Name), cmp.Compare(x.Type, y.Type))
	})
	return out
}

func sameRRset(x, y RRset) bool {
	return x.Rcode == y.Rcode && x.AD == y.AD && slices.Equal(x.CNAMEs, y.CNAMEs) && slices.Equal(x.Data, y.Data)
}
