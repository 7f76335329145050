package verify

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-msgauth/authres"
)

// corpusCase is one entry of testdata/corpus/cases.json: a real header
// block from a public source and what a person reading it expects.
type corpusCase struct {
	File       string `json:"file"`
	Provider   string `json:"provider"`
	Source     string `json:"source"`
	AuthservID string `json:"authserv_id"` // configured id; "none" for Microsoft
	// Field, when set, names the header the case is about instead of
	// Authentication-Results (ARC-Authentication-Results written by
	// Gmail, X-MS-Exchange-Authentication-Results written by Exchange
	// Online): the first one is parsed and summarised directly.
	Field string `json:"field"`
	Want  struct {
		SPF, DKIM, DMARC, ARC string
	} `json:"want"`
	// Results of the trusted header, in order: "method=result key=value …"
	// with the properties that must be read exactly (quote values with
	// spaces). reason= is compared with Result.Reason.
	Results []string `json:"results"`
	// ParseErrors is true when the header is malformed and a parse error
	// must be reported beside the partial results.
	ParseErrors bool `json:"parse_errors"`
	ARC         *struct {
		Instances int    `json:"instances"`
		CV        string `json:"cv"`
		Valid     bool   `json:"valid"`
	} `json:"arc"`
}

func loadCorpus(t testing.TB) []corpusCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "corpus", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []corpusCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatalf("cases.json: %v", err)
	}
	return cases
}

// specResult is a parsed "method=result key=value" expectation.
type specResult struct {
	method, result, reason string
	props                  map[string]string
}

func parseSpec(t testing.TB, s string) specResult {
	t.Helper()
	var fields []string
	var cur strings.Builder
	inQuote := false
	for _, c := range s {
		switch {
		case c == '"':
			inQuote = !inQuote
		case c == ' ' && !inQuote:
			if cur.Len() > 0 {
				fields = append(fields, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(c)
		}
	}
	if cur.Len() > 0 {
		fields = append(fields, cur.String())
	}
	m, r, ok := strings.Cut(fields[0], "=")
	if !ok {
		t.Fatalf("bad spec %q", s)
	}
	sp := specResult{method: m, result: r, props: map[string]string{}}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			t.Fatalf("bad spec %q", s)
		}
		if k == "reason" {
			sp.reason = v
		} else {
			sp.props[k] = v
		}
	}
	return sp
}

func readCase(t testing.TB, c corpusCase) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "corpus", c.File))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// trustedValue returns the raw value of the header our trust rule picks,
// so go-msgauth can be fed the same input.
func trustedValue(t testing.TB, raw []byte, id string) string {
	h, err := ReadHeader(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	ev := Evaluate(h, id)
	if ev.Trusted < 0 {
		return ""
	}
	return h.Values("Authentication-Results")[ev.Trusted]
}

func TestCorpus(t *testing.T) {
	cases := loadCorpus(t)
	if len(cases) < 60 {
		t.Errorf("corpus has %d cases, want at least 60", len(cases))
	}
	byProvider := map[string]int{}
	ours, theirs, theirsLoose := 0, 0, 0
	for _, c := range cases {
		byProvider[c.Provider]++
		t.Run(strings.TrimSuffix(c.File, ".eml"), func(t *testing.T) {
			if c.Source == "" {
				t.Error("case has no source")
			}
			raw := readCase(t, c)
			h, err := ReadHeader(strings.NewReader(string(raw)))
			if err != nil {
				t.Fatalf("ReadHeader: %v", err)
			}
			var v Verdicts
			value := ""
			if c.Field == "" {
				v = Summarize(h, c.AuthservID)
				if !v.Trusted {
					t.Fatalf("no trusted header for authserv-id %q", c.AuthservID)
				}
				value = trustedValue(t, raw, c.AuthservID)
			} else {
				v, value = summarizeField(t, h, c)
			}
			got := [4]string{v.SPF, v.DKIM, v.DMARC, v.ARC}
			want := [4]string{c.Want.SPF, c.Want.DKIM, c.Want.DMARC, c.Want.ARC}
			if got != want {
				t.Errorf("spf/dkim/dmarc/arc = %q, want %q", got, want)
			}
			if c.ParseErrors != (len(v.Errors) > 0) {
				t.Errorf("parse errors = %q, want errors: %v", v.Errors, c.ParseErrors)
			}
			ok := checkOurs(t, c, v.Results)
			if ok {
				ours++
			}
			if c.ARC != nil {
				ch := ParseARC(h)
				if ch.Instances != c.ARC.Instances || ch.CV != c.ARC.CV || ch.Valid != c.ARC.Valid {
					t.Errorf("ARC = %d/%s/%v (%s), want %d/%s/%v", ch.Instances, ch.CV, ch.Valid, ch.Error, c.ARC.Instances, c.ARC.CV, c.ARC.Valid)
				}
			}
			strict, loose := goMsgauthHandles(t, c, value)
			if strict {
				theirs++
			}
			if loose {
				theirsLoose++
			}
		})
	}
	t.Logf("corpus: %d cases by provider %v", len(cases), byProvider)
	t.Logf("all results and properties right: ours %d/%d, go-msgauth authres.Parse alone %d/%d (%d with method and result right, properties ignored)",
		ours, len(cases), theirs, len(cases), theirsLoose)
}

// summarizeField parses the first c.Field header on its own; it returns
// the verdicts and the value go-msgauth is given (the "i=N;" of an ARC
// header removed, as LIBRARIES.md suggests).
func summarizeField(t *testing.T, h textproto.Header, c corpusCase) (Verdicts, string) {
	t.Helper()
	raw := h.Get(c.Field)
	if raw == "" {
		t.Fatalf("no %s header", c.Field)
	}
	var ar AuthResults
	var err error
	value := raw
	if strings.EqualFold(c.Field, "ARC-Authentication-Results") {
		_, ar, err = parseAAR(raw)
		value = raw[strings.IndexByte(raw, ';')+1:]
	} else {
		ar, err = ParseAuthResults(raw)
	}
	if !MustAuthservIDs(c.AuthservID).Match(ar.AuthservID) {
		t.Fatalf("authserv-id %q, want %q", ar.AuthservID, c.AuthservID)
	}
	v := Verdicts{Trusted: true}
	v.fill(ar, h)
	if err != nil {
		v.Errors = append(v.Errors, err.Error())
	}
	return v, value
}

func checkOurs(t *testing.T, c corpusCase, got []Result) bool {
	t.Helper()
	if len(got) != len(c.Results) {
		t.Errorf("%d results %+v, want %d", len(got), got, len(c.Results))
		return false
	}
	ok := true
	for i, s := range c.Results {
		sp := parseSpec(t, s)
		r := got[i]
		if r.Method != sp.method || r.Result != sp.result || r.Reason != sp.reason {
			t.Errorf("result %d = %s=%s reason=%q, want %s=%s reason=%q", i, r.Method, r.Result, r.Reason, sp.method, sp.result, sp.reason)
			ok = false
		}
		for k, v := range sp.props {
			if r.Props[k] != v {
				t.Errorf("result %d (%s) %s = %q, want %q", i, r.Method, k, r.Props[k], v)
				ok = false
			}
		}
	}
	return ok
}

// goMsgauthHandles reports whether go-msgauth's authres.Parse alone gets
// the case right: strictly (every expected property readable from its
// typed results) and loosely (authserv-id, methods and results only).
func goMsgauthHandles(t *testing.T, c corpusCase, value string) (strict, loose bool) {
	id, results, err := authres.Parse(value)
	wantID := c.AuthservID
	if strings.EqualFold(wantID, TrustNoID) {
		wantID = ""
	}
	if err != nil || !strings.EqualFold(id, wantID) || len(results) != len(c.Results) {
		return false, false
	}
	strict, loose = true, true
	for i, s := range c.Results {
		sp := parseSpec(t, s)
		method, value, reason, props := msgauthFields(results[i])
		if method != sp.method || value != sp.result {
			return false, false
		}
		if reason != sp.reason {
			strict = false
		}
		for k, v := range sp.props {
			if got, known := props[k]; !known || got != v {
				strict = false
			}
		}
	}
	return strict, loose
}

// msgauthFields flattens go-msgauth's typed results; props only holds
// what its types expose.
func msgauthFields(r authres.Result) (method, value, reason string, props map[string]string) {
	switch r := r.(type) {
	case *authres.SPFResult:
		return "spf", string(r.Value), r.Reason, map[string]string{"smtp.mailfrom": r.From, "smtp.helo": r.Helo}
	case *authres.DKIMResult:
		return "dkim", string(r.Value), r.Reason, map[string]string{"header.d": r.Domain, "header.i": r.Identifier}
	case *authres.DMARCResult:
		return "dmarc", string(r.Value), r.Reason, map[string]string{"header.from": r.From}
	case *authres.AuthResult:
		return "auth", string(r.Value), r.Reason, map[string]string{"smtp.auth": r.Auth}
	case *authres.IPRevResult:
		return "iprev", string(r.Value), r.Reason, map[string]string{"policy.iprev": r.IP}
	case *authres.ARCResult:
		return "arc", string(r.Value), "", map[string]string{"smtp.remote-ip": r.RemoteIP}
	case *authres.DomainKeysResult:
		return "domainkeys", string(r.Value), r.Reason, map[string]string{"header.d": r.Domain, "header.from": r.From, "header.sender": r.Sender}
	case *authres.SenderIDResult:
		return "sender-id", string(r.Value), r.Reason, map[string]string{"header." + strings.ToLower(r.HeaderKey): r.HeaderValue}
	case *authres.GenericResult:
		props := map[string]string{}
		for k, v := range r.Params {
			if k != "reason" {
				props[k] = v
			}
		}
		return r.Method, string(r.Value), r.Params["reason"], props
	}
	return "", "", "", nil
}
