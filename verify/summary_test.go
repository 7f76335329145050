package verify

import "testing"

func TestSummarizeDKIM(t *testing.T) {
	tests := []struct {
		name, value, from, want string
	}{
		{"aligned failure beats unaligned pass", "x; dkim=pass header.d=esp.example; dkim=fail header.d=shop.example", "shop.example", "fail"},
		{"best aligned", "x; dkim=fail header.d=shop.example; dkim=pass header.d=mail.shop.example", "shop.example", "pass"},
		{"no aligned signature: best of all", "x; dkim=fail header.d=a.example; dkim=pass header.d=b.example", "shop.example", "pass"},
		{"Gmail header.i only", "x; dkim=neutral header.i=@shop.example; dkim=pass header.i=@esp.example", "shop.example", "neutral"},
		{"Microsoft header.d=none", "x; dkim=none header.d=none", "shop.example", "none"},
		{"temperror ranks above fail", "x; dkim=fail header.d=a.example; dkim=temperror header.d=a.example", "a.example", "temperror"},
		{"no from domain", "x; dkim=fail header.d=a.example; dkim=pass header.d=b.example", "", "pass"},
		{"no dkim", "x; spf=pass smtp.mailfrom=a@b.example", "b.example", ""},
		{"Yahoo perm_fail is permerror", "x; dkim=perm_fail header.i=@a.example", "a.example", "permerror"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ar, err := ParseAuthResults(tt.value)
			if err != nil {
				t.Fatal(err)
			}
			if got := SummarizeDKIM(ar, tt.from); got != tt.want {
				t.Errorf("SummarizeDKIM = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAligned(t *testing.T) {
	tests := []struct {
		d, from string
		want    bool
	}{
		{"example.com", "example.com", true},
		{"Mail.Example.COM.", "example.com", true},
		{"example.com", "news.example.com", true},
		{"a.example.co.uk", "b.example.co.uk", true},
		{"example.co.uk", "other.co.uk", false},
		{"oss.qualcomm.com", "qualcomm.com", true},
		{"zonevs.eu", "zone.ee", false},
		{"", "example.com", false},
	}
	for _, tt := range tests {
		if got := Aligned(tt.d, tt.from); got != tt.want {
			t.Errorf("Aligned(%q, %q) = %v, want %v", tt.d, tt.from, got, tt.want)
		}
	}
}

func TestFromDomainFallsBackToFromHeader(t *testing.T) {
	// No dmarc result names header.from: the From header decides what is
	// aligned.
	h := header(t, "Authentication-Results: x.example; dkim=pass header.d=esp.example; dkim=fail header.d=shop.example\n"+
		"From: \"Shop\" <noreply@shop.example>\n\n")
	if v := Summarize(h, "x.example"); v.DKIM != "fail" {
		t.Errorf("dkim = %q, want the aligned signature's fail", v.DKIM)
	}
}
