package verify

import (
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"
)

func TestParseAuthResults(t *testing.T) {
	tests := []struct {
		name  string
		value string
		want  AuthResults
	}{
		{
			name:  "comment with ; and = does not split the result",
			value: "mx.example.org; dkim=pass (2048-bit key; unprotected) header.d=example.com header.s=sel1; dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=example.com",
			want: AuthResults{AuthservID: "mx.example.org", Results: []Result{
				{Method: "dkim", Result: "pass", Props: map[string]string{"header.d": "example.com", "header.s": "sel1"}, Comment: "2048-bit key; unprotected"},
				{Method: "dmarc", Result: "pass", Props: map[string]string{"header.from": "example.com"}, Comment: "p=REJECT sp=REJECT dis=NONE"},
			}},
		},
		{
			name:  "nested comments",
			value: "mx.example.org; spf=fail (outer (inner; x=y) tail) smtp.mailfrom=a@example.com",
			want: AuthResults{AuthservID: "mx.example.org", Results: []Result{
				{Method: "spf", Result: "fail", Props: map[string]string{"smtp.mailfrom": "a@example.com"}, Comment: "outer (inner; x=y) tail"},
			}},
		},
		{
			name:  "parentheses and semicolons inside a quoted string are data",
			value: `mx.example.org; spf=fail reason="mechanism -all matched (see; policy)" smtp.mailfrom="x;dkim=pass@example.com"`,
			want: AuthResults{AuthservID: "mx.example.org", Results: []Result{
				{Method: "spf", Result: "fail", Reason: "mechanism -all matched (see; policy)", Props: map[string]string{"smtp.mailfrom": "x;dkim=pass@example.com"}},
			}},
		},
		{
			name:  "folded CRLF and upper case",
			value: "MX.Example.ORG;\r\n\tDKIM=PASS Header.D=example.com\r\n HEADER.B=AbC+/9==;\r\n SPF=SoftFail SMTP.MailFrom=b@example.com",
			want: AuthResults{AuthservID: "MX.Example.ORG", Results: []Result{
				{Method: "dkim", Result: "pass", Props: map[string]string{"header.d": "example.com", "header.b": "AbC+/9=="}},
				{Method: "spf", Result: "softfail", Props: map[string]string{"smtp.mailfrom": "b@example.com"}},
			}},
		},
		{
			name:  "version and none",
			value: "example.org 1; none",
			want:  AuthResults{AuthservID: "example.org", Version: "1"},
		},
		{
			name:  "Microsoft: no authserv-id, tenant markers between results",
			value: "spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=contoso.com; contoso.com; dkim=none (message not signed) header.d=none;contoso.com; dmarc=bestguesspass action=none header.from=contoso.com;compauth=pass reason=109",
			want: AuthResults{Results: []Result{
				{Method: "spf", Result: "pass", Props: map[string]string{"smtp.mailfrom": "contoso.com"}, Comment: "sender IP is 192.0.2.1"},
				{Method: "dkim", Result: "none", Props: map[string]string{"header.d": "none"}, Comment: "message not signed"},
				{Method: "dmarc", Result: "bestguesspass", Props: map[string]string{"action": "none", "header.from": "contoso.com"}},
				{Method: "compauth", Result: "pass", Reason: "109"},
			}},
		},
		{
			name:  "unknown methods keep everything",
			value: "mx.example.org; bimi=pass header.d=example.com header.selector=default policy.authority=pass policy.authority-uri=https://example.com/vmc.pem; dkim-atps=neutral; x-tls=pass version=TLSv1.3 (new)",
			want: AuthResults{AuthservID: "mx.example.org", Results: []Result{
				{Method: "bimi", Result: "pass", Props: map[string]string{"header.d": "example.com", "header.selector": "default", "policy.authority": "pass", "policy.authority-uri": "https://example.com/vmc.pem"}},
				{Method: "dkim-atps", Result: "neutral"},
				{Method: "x-tls", Result: "pass", Props: map[string]string{"version": "TLSv1.3"}, Comment: "new"},
			}},
		},
		{
			name:  "method version with CFWS",
			value: "mx.example.org; dkim/1=pass header.d=example.com; spf (c) / 1 (d) = neutral",
			want: AuthResults{AuthservID: "mx.example.org", Results: []Result{
				{Method: "dkim", Result: "pass", Props: map[string]string{"header.d": "example.com"}},
				{Method: "spf", Result: "neutral", Comment: "c; d"},
			}},
		},
		{
			name:  "empty value",
			value: "",
			want:  AuthResults{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAuthResults(tt.value)
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseAuthResultsErrors(t *testing.T) {
	tests := []struct {
		name, value string
		methods     []string // results still read
		errContains string
	}{
		{"method without result", "mx.example.org; spf=pass; dkim; dmarc=fail", []string{"spf", "dmarc"}, `method "dkim" has no result`},
		{"unterminated comment", "mx.example.org; spf=pass (never closed", []string{"spf"}, "unterminated comment"},
		{"unterminated quote", `mx.example.org; dkim=fail reason="open`, []string{"dkim"}, "unterminated quoted string"},
		{"property without value", "mx.example.org; dkim=pass header.d example.com; spf=pass", []string{"dkim", "spf"}, `property "header.d" of dkim has no value`},
		{"garbage after id", "mx.example.org ) x; spf=pass", []string{"spf"}, `unexpected ")" after authserv-id "mx.example.org"`},
		{"id followed by =", "mx.example.org ===; spf=pass", []string{"spf"}, `method "mx.example.org" has no result`},
		{"no id at all", "; spf=pass", []string{"spf"}, "where the authserv-id belongs"},
		{"stray bytes", "mx.example.org; spf=pass ) smtp.mailfrom=a@b", []string{"spf"}, `unexpected ')'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAuthResults(tt.value)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error = %v, want a *ParseError", err)
			}
			if !strings.Contains(err.Error(), tt.errContains) || !strings.HasPrefix(err.Error(), "Authentication-Results: ") {
				t.Errorf("error %q does not name the header and %q", err, tt.errContains)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			var methods []string
			for _, r := range got.Results {
				methods = append(methods, r.Method)
			}
			if !reflect.DeepEqual(methods, tt.methods) {
				t.Errorf("partial results %v, want %v", methods, tt.methods)
			}
		})
	}
}

func TestParseErrorIsBounded(t *testing.T) {
	_, err := ParseAuthResults("x; " + strings.Repeat("a; ", 1000))
	var pe *ParseError
	if !errors.As(err, &pe) || len(pe.Problems) > 8 {
		t.Fatalf("got %v", err)
	}
}

func TestTypedRoundTripsThroughGoMsgauth(t *testing.T) {
	ar, err := ParseAuthResults("mx.google.com; dkim=pass header.i=@example.com header.d=example.com; spf=pass (google.com: x) smtp.mailfrom=a@example.com; dmarc=pass (p=NONE) header.from=example.com; compauth=pass reason=100")
	if err != nil {
		t.Fatal(err)
	}
	var typed []authres.Result
	for _, r := range ar.Results {
		typed = append(typed, r.Typed())
	}
	if d, ok := typed[0].(*authres.DKIMResult); !ok || d.Domain != "example.com" || d.Identifier != "@example.com" || d.Value != authres.ResultPass {
		t.Errorf("dkim = %#v", typed[0])
	}
	if s, ok := typed[1].(*authres.SPFResult); !ok || s.From != "a@example.com" {
		t.Errorf("spf = %#v", typed[1])
	}
	if g, ok := typed[3].(*authres.GenericResult); !ok || g.Method != "compauth" || g.Params["reason"] != "100" {
		t.Errorf("compauth = %#v", typed[3])
	}
	// go-msgauth re-parses what its own formatter writes from our results.
	id, back, err := authres.Parse(authres.Format(ar.AuthservID, typed))
	if err != nil || id != "mx.google.com" || len(back) != 4 {
		t.Fatalf("round trip: %q %d %v", id, len(back), err)
	}
}

// The forms receivers wrote before or beside RFC 8601 are read, every
// recoverable result recovered; what was wrong is reported.
func TestParseTolerantForms(t *testing.T) {
	b64 := "=?utf-8?B?" + base64.StdEncoding.EncodeToString([]byte("spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=x.example; dkim=pass (signature was verified) header.d=x.example;dmarc=pass action=none header.from=x.example;compauth=pass reason=100")) + "?="
	for _, tc := range []struct {
		name, value, id, want string
		errs                  bool
	}{
		{"encoded-word", b64, "", "spf=pass dkim=pass dmarc=pass compauth=pass", false},
		{"encoded-word q", "=?us-ascii?Q?mx.example;_spf=3Dpass?=", "mx.example", "spf=pass", false},
		{"old outlook.com", "spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=x.example; outlook.com; dkim=pass (signature was verified) header.d=x.example;outlook.com; dmarc=pass action=none header.from=x.example;", "", "spf=pass dkim=pass dmarc=pass", false},
		{"old yahoo", "mta1.mail.bf1.yahoo.com  from=x.example; domainkeys=neutral (no sig);  from=x.example; dkim=pass (ok)", "mta1.mail.bf1.yahoo.com", "domainkeys=neutral dkim=pass", true},
		{"spfDomain pair", "mta1.mail.bf1.yahoo.com; spfDomain=x.example spfResult=pass; dkimResult=fail dkimDomain=x.example", "mta1.mail.bf1.yahoo.com", "spf=pass dkim=fail", false},
		{"missing semicolons", "mx.example; spf=pass smtp.mailfrom=x.example dkim=pass header.d=x.example dmarc=pass header.from=x.example", "mx.example", "spf=pass dkim=pass dmarc=pass", true},
		{"glued nested comment", "mx.example; dkim=fail(body hash mismatch (got b=abc)) header.d=x.example; dmarc=pass(p=none (sp=none)) header.from=x.example", "mx.example", "dkim=fail dmarc=pass", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ar, err := ParseAuthResults(tc.value)
			var got []string
			for _, r := range ar.Results {
				got = append(got, r.Method+"="+r.Result)
			}
			if strings.Join(got, " ") != tc.want || ar.AuthservID != tc.id || (err != nil) != tc.errs {
				t.Errorf("id %q, results %q, err %v; want id %q, %q, errors %v", ar.AuthservID, got, err, tc.id, tc.want, tc.errs)
			}
		})
	}
	ar, _ := ParseAuthResults("mx.example; spfDomain=x.example spfResult=pass")
	if r := ar.Results[0]; r.Prop("smtp.mailfrom") != "x.example" || len(r.Props) != 1 {
		t.Errorf("spfDomain pair: %+v", r)
	}
	ar, _ = ParseAuthResults("mx.example; dkim=fail (bad (very (bad))) header.d=x.example")
	if ar.Results[0].Comment != "bad (very (bad))" {
		t.Errorf("nested comment %q", ar.Results[0].Comment)
	}
}
