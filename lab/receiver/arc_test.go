package receiver

import "testing"

// Only a verified chain from a trusted sealer that had found DMARC
// passing overrides a DMARC failure.
func TestHonoursARC(t *testing.T) {
	g := Gmail()
	ok := ARCResult{Value: ValPass, Sealer: "lists.forwarder.test", Instance: 1,
		Found:   map[string]string{"spf": "pass", "dkim": "pass", "dmarc": "pass"},
		Domains: map[string]string{"spfdomain": "example-bank.test", "dkdomain": "example-bank.test", "fromdomain": "example-bank.test"}}
	for _, tc := range []struct {
		name string
		p    Profile
		a    func(ARCResult) ARCResult
		want bool
	}{
		{"trusted", g, func(a ARCResult) ARCResult { return a }, true},
		{"sealer case", g, func(a ARCResult) ARCResult { a.Sealer = "Lists.Forwarder.TEST"; return a }, true},
		{"untrusted sealer", g, func(a ARCResult) ARCResult { a.Sealer = "evil.test"; return a }, false},
		{"chain failed", g, func(a ARCResult) ARCResult { a.Value = ValFail; return a }, false},
		{"sealer saw dmarc fail", g, func(a ARCResult) ARCResult {
			a.Found = map[string]string{"dmarc": "fail"}
			return a
		}, false},
		{"yahoo trusts nobody", Yahoo(), func(a ARCResult) ARCResult { return a }, false},
	} {
		if got := tc.p.honours(tc.a(ok)); got != tc.want {
			t.Errorf("%s: honours = %v, want %v", tc.name, got, tc.want)
		}
	}
	want := "arc=pass (i=1 spf=pass spfdomain=example-bank.test dkim=pass dkdomain=example-bank.test dmarc=pass fromdomain=example-bank.test)"
	if got := gmailARC(ok); got != want {
		t.Errorf("gmailARC = %q, want %q", got, want)
	}
}
