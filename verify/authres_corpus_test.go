package verify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-msgauth/authres"
)

// corpusCase is one case of testdata/corpus: NAME.eml, a real header
// block from a public source, and its sidecar NAME.json with what a
// person reading it expects.
type corpusCase struct {
	File       string `json:"-"`
	Provider   string `json:"provider"`
	Source     string `json:"source"`
	Class      string `json:"class"`       // see corpusClasses
	AuthservID string `json:"authserv_id"` // the mailbox's authserv_id setting
	// Field, when set, names the header the case is about instead of
	// Authentication-Results (ARC-Authentication-Results written by
	// Gmail, X-MS-Exchange-Authentication-Results written by Exchange
	// Online): the first one is parsed and summarised directly.
	Field string `json:"field"`
	Want  struct {
		SPF, DKIM, DMARC, ARC string
	} `json:"want"`
	// Results, when given, are the trusted results in order:
	// "method=result key=value …" with the properties that must be read
	// exactly (quote values with spaces). reason= is compared with
	// Result.Reason.
	Results []string `json:"results"`
	// ParseErrors, when given, says whether a parse error must be
	// reported beside the results.
	ParseErrors *bool `json:"parse_errors"`
	ARC         *struct {
		Instances int    `json:"instances"`
		CV        string `json:"cv"`
		Valid     bool   `json:"valid"`
	} `json:"arc"`
	// KnownMiss says why the case is still read wrong (listed in the
	// corpus README); the test fails when such a case starts passing, so
	// the list stays true.
	KnownMiss string `json:"known_miss"`
}

// corpusClasses are the kinds of header blocks the corpus covers.
var corpusClasses = map[string]string{
	"single":        "one header from the receiver",
	"split-headers": "one receiver, several headers with its id (class 1)",
	"several-ids":   "one receiver, several ids (class 2)",
	"encoded-word":  "RFC 2047 encoded-word values (class 3)",
	"legacy":        "legacy or broken forms (class 4)",
	"forged":        "receiver's headers above forged ones",
	"aar":           "ARC-Authentication-Results / X-MS-Exchange-Authentication-Results",
}

func loadCorpus(t testing.TB) []corpusCase {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "corpus", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []corpusCase
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var c corpusCase
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		c.File = strings.TrimSuffix(filepath.Base(p), ".json") + ".eml"
		cases = append(cases, c)
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

// trustedValue returns the raw value of the topmost header our trust
// rule picks, so go-msgauth can be fed the same input.
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

// tally counts fully right cases by a key.
type tally map[string][2]int

func (t tally) add(key string, ok bool) {
	n := t[key]
	n[1]++
	if ok {
		n[0]++
	}
	t[key] = n
}

func (t tally) String() string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %-14s %3d/%-3d %5.1f%%", k, t[k][0], t[k][1], 100*float64(t[k][0])/float64(t[k][1]))
	}
	return b.String()
}

// TestCorpus reads every case as the prober would and compares it with
// what a person reads. A case is fully right when the four summaries, and
// where the sidecar gives them the results, the parse errors and the ARC
// structure, all match. The match rate by class and provider is logged
// (go test ./verify -run TestCorpus -v).
func TestCorpus(t *testing.T) {
	cases := loadCorpus(t)
	if len(cases) < 150 {
		t.Errorf("corpus has %d cases, want at least 150", len(cases))
	}
	byClass, byProvider := tally{}, tally{}
	ours, theirs, theirsLoose, compared := 0, 0, 0, 0
	var misses []string
	for _, c := range cases {
		t.Run(strings.TrimSuffix(c.File, ".eml"), func(t *testing.T) {
			if c.Source == "" || c.Provider == "" {
				t.Error("case has no source or provider")
			}
			if _, ok := corpusClasses[c.Class]; !ok {
				t.Errorf("unknown class %q", c.Class)
			}
			problems, value := judgeCase(t, c)
			ok := len(problems) == 0
			byClass.add(c.Class, ok)
			byProvider.add(c.Provider, ok)
			byClass.add("all", ok)
			switch {
			case ok && c.KnownMiss != "":
				t.Errorf("listed as a known miss (%s) but now read right: drop known_miss", c.KnownMiss)
			case !ok && c.KnownMiss == "":
				for _, p := range problems {
					t.Error(p)
				}
			case !ok:
				misses = append(misses, c.File+": "+c.KnownMiss)
			}
			if ok {
				ours++
			}
			if len(c.Results) > 0 {
				compared++
				strict, loose := goMsgauthHandles(t, c, value)
				if strict {
					theirs++
				}
				if loose {
					theirsLoose++
				}
			}
		})
	}
	t.Logf("corpus: %d cases, fully right %d; by class:%v\nby provider:%v", len(cases), ours, byClass, byProvider)
	t.Logf("known misses: %q", misses)
	t.Logf("of the %d cases with expected results, go-msgauth's authres.Parse alone reads %d fully (%d with method and result right, properties ignored)",
		compared, theirs, theirsLoose)
}

// judgeCase returns every way the case is read wrong, and the header
// value go-msgauth is given.
func judgeCase(t *testing.T, c corpusCase) (problems []string, value string) {
	t.Helper()
	raw := readCase(t, c)
	h, err := ReadHeader(strings.NewReader(string(raw)))
	if err != nil {
		return []string{"ReadHeader: " + err.Error()}, ""
	}
	var v Verdicts
	if c.Field == "" {
		v = Summarize(h, c.AuthservID)
		if !v.Trusted {
			problems = append(problems, fmt.Sprintf("no trusted header for authserv-id %q", c.AuthservID))
		}
		value = trustedValue(t, raw, c.AuthservID)
	} else {
		v, value = summarizeField(t, h, c)
	}
	got := [4]string{v.SPF, v.DKIM, v.DMARC, v.ARC}
	want := [4]string{c.Want.SPF, c.Want.DKIM, c.Want.DMARC, c.Want.ARC}
	if got != want {
		problems = append(problems, fmt.Sprintf("spf/dkim/dmarc/arc = %q, want %q", got, want))
	}
	if c.ParseErrors != nil && *c.ParseErrors != (len(v.Errors) > 0) {
		problems = append(problems, fmt.Sprintf("parse errors = %q, want errors: %v", v.Errors, *c.ParseErrors))
	}
	if len(c.Results) > 0 {
		problems = append(problems, checkOurs(t, c, v.Results)...)
	}
	if c.ARC != nil {
		ch := ParseARC(h)
		if ch.Instances != c.ARC.Instances || ch.CV != c.ARC.CV || ch.Valid != c.ARC.Valid {
			problems = append(problems, fmt.Sprintf("ARC = %d/%s/%v (%s), want %d/%s/%v", ch.Instances, ch.CV, ch.Valid, ch.Error, c.ARC.Instances, c.ARC.CV, c.ARC.Valid))
		}
	}
	return problems, value
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

func checkOurs(t *testing.T, c corpusCase, got []Result) []string {
	t.Helper()
	if len(got) != len(c.Results) {
		return []string{fmt.Sprintf("%d results %+v, want %d", len(got), got, len(c.Results))}
	}
	var problems []string
	for i, s := range c.Results {
		sp := parseSpec(t, s)
		r := got[i]
		if r.Method != sp.method || r.Result != sp.result || r.Reason != sp.reason {
			problems = append(problems, fmt.Sprintf("result %d = %s=%s reason=%q, want %s=%s reason=%q", i, r.Method, r.Result, r.Reason, sp.method, sp.result, sp.reason))
		}
		for k, v := range sp.props {
			if r.Props[k] != v {
				problems = append(problems, fmt.Sprintf("result %d (%s) %s = %q, want %q", i, r.Method, k, r.Props[k], v))
			}
		}
	}
	return problems
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
