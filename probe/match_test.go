package probe

import (
	"strings"
	"testing"
)

func TestMatchToken(t *testing.T) {
	pending := map[string]bool{"otp-abc123": true, "otp-zzz": true}
	match := func(tok string) bool { return pending[tok] }
	cases := []struct {
		name, header, want string
	}{
		{"header", "X-Otpprobe-Id: otp-abc123\r\nSubject: hi\r\n\r\n", "otp-abc123"},
		{"header beats subject", "Subject: code [otp-zzz]\r\nX-Otpprobe-Id:  otp-abc123 \r\n\r\n", "otp-abc123"},
		{"unknown header, subject token", "X-Otpprobe-Id: otp-old\r\nSubject: code [otp-zzz]\r\n\r\n", "otp-zzz"},
		{"folded subject", "Subject: Your code is 123456\r\n [otp-abc123]\r\n\r\n", "otp-abc123"},
		{"encoded subject", "Subject: =?UTF-8?B?Vm90cmUgY29kZSBbb3RwLWFiYzEyM10=?=\r\n\r\n", "otp-abc123"},
		{"several brackets", "Subject: [EXT] [ ] [otp-zzz] [x y]\r\n\r\n", "otp-zzz"},
		{"bracket with space is no token", "Subject: [otp-zzz ]\r\n\r\n", ""},
		{"unknown charset keeps raw words", "Subject: =?x-unknown?Q?abc?= [otp-zzz]\r\n\r\n", "otp-zzz"},
		{"no token", "Subject: lunch [not-a-canary]\r\nFrom: a@b\r\n\r\n", ""},
		{"not a header block", "garbage without colon\r\n\r\n", ""},
		{"empty", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := matchToken([]byte(tc.header), match); got != tc.want {
				t.Fatalf("matchToken = %q, want %q", got, tc.want)
			}
		})
	}
}

// A hostile Subject costs one pass and never yields oversized candidates.
func TestTokenCandidatesBounded(t *testing.T) {
	subject := strings.Repeat("[", 10000) + "[" + strings.Repeat("a", 500) + "]" + strings.Repeat("[x]", 1000)
	n := 0
	matchToken([]byte("Subject: "+subject+"\r\n\r\n"), func(tok string) bool {
		n++
		if len(tok) > maxTokenLen {
			t.Fatalf("candidate of %d bytes", len(tok))
		}
		return false
	})
	if n != 1000 {
		t.Fatalf("%d candidates, want 1000", n)
	}
}
