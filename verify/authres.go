package verify

import (
	"fmt"
	"mime"
	"strings"

	"github.com/emersion/go-msgauth/authres"
)

// AuthResults is one parsed Authentication-Results header (RFC 8601).
type AuthResults struct {
	// AuthservID is "" when the header has none (Microsoft 365 and
	// Outlook.com write results without an authserv-id).
	AuthservID string   `json:"authserv_id"`
	Version    string   `json:"version,omitempty"`
	Results    []Result `json:"results"`
}

// Result is one "method=result" statement with everything said about it.
type Result struct {
	Method string `json:"method"` // lower case, method version stripped
	Result string `json:"result"` // lower case
	Reason string `json:"reason,omitempty"`
	// Props holds every ptype.property=value (lower-case keys, values as
	// written, quotes removed) and any other key=value the receiver added
	// (Microsoft's action=, compauth's reason is Reason).
	Props map[string]string `json:"props,omitempty"`
	// Comment is the text of the comments inside this result, joined
	// with "; " (Gmail's "(p=REJECT sp=REJECT dis=NONE)", Microsoft's
	// "(sender IP is …)").
	Comment string `json:"comment,omitempty"`
}

// SyntaxError is one problem found while parsing a header value.
type SyntaxError struct {
	Offset int    // byte offset in the value
	Msg    string // what was wrong
}

func (e SyntaxError) Error() string { return fmt.Sprintf("at byte %d: %s", e.Offset, e.Msg) }

// ParseError lists every problem of one header value; the results that
// could be read are still returned beside it.
type ParseError struct {
	Header   string // header field name
	Problems []SyntaxError
}

func (e *ParseError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	return fmt.Sprintf("%s: %s", e.Header, strings.Join(msgs, "; "))
}

// ParseAuthResults parses an Authentication-Results header value. It is
// deliberately lenient, because go-msgauth's authres.Parse fails on what
// receivers really write: comments anywhere (nested, holding ";" and
// "="), quoted values, a missing authserv-id, properties it does not
// model. On bad input it returns what it could read and a *ParseError.
//
// It also reads the forms receivers wrote before or beside RFC 8601:
// a value sent as RFC 2047 encoded-words (Microsoft), results without
// authserv-id with "outlook.com;" between them (old Outlook.com), no ";"
// after the id and "from=" before its method (old Yahoo), "spfDomain=…
// spfResult=…" pairs, comments glued to a result ("pass(p=none)") and a
// result that follows another without ";" (reported).
func ParseAuthResults(value string) (AuthResults, error) {
	p := newARParser(value, "Authentication-Results")
	res := p.parse()
	return res, p.err()
}

func newARParser(value, header string) *arParser {
	return &arParser{s: decodeWords(value), header: header}
}

// decodeWords decodes RFC 2047 encoded-words. They have no place in a
// structured field, but Microsoft writes whole Authentication-Results
// and ARC-Authentication-Results values as "=?utf-8?B?…?=". A value that
// does not decode is parsed as written.
func decodeWords(v string) string {
	if !strings.Contains(v, "=?") {
		return v
	}
	d, err := wordDecoder.DecodeHeader(v)
	if err != nil {
		return v
	}
	// "=?utf-8?q?=FF?=" decodes to invalid UTF-8; the value was valid.
	return strings.ToValidUTF8(d, "\uFFFD")
}

// wordDecoder knows UTF-8, US-ASCII and ISO-8859-1, what receivers use;
// other charsets fail and the value is read as written.
var wordDecoder = &mime.WordDecoder{}

// arParser is a single pass over one header value. Comments and folding
// whitespace are skipped between tokens; comment text is collected for
// the result being read.
type arParser struct {
	s        string
	i        int
	header   string
	comments []string
	problems []SyntaxError
}

func (p *arParser) err() error {
	if len(p.problems) == 0 {
		return nil
	}
	return &ParseError{Header: p.header, Problems: p.problems}
}

func (p *arParser) fail(off int, format string, args ...any) {
	// A pathological value must not produce an unbounded error.
	if len(p.problems) < 8 {
		p.problems = append(p.problems, SyntaxError{Offset: off, Msg: fmt.Sprintf(format, args...)})
	}
}

func (p *arParser) eof() bool { return p.i >= len(p.s) }

func (p *arParser) peek() byte {
	if p.eof() {
		return 0
	}
	return p.s[p.i]
}

func isWSP(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// skipCFWS skips folding whitespace and comments, keeping comment text.
func (p *arParser) skipCFWS() {
	for !p.eof() {
		c := p.s[p.i]
		switch {
		case isWSP(c):
			p.i++
		case c == '(':
			p.comment()
		default:
			return
		}
	}
}

// comment reads a possibly nested comment starting at "(".
func (p *arParser) comment() {
	start := p.i
	p.i++ // (
	depth := 1
	var b strings.Builder
	for !p.eof() {
		c := p.s[p.i]
		switch c {
		case '\\':
			if p.i+1 < len(p.s) {
				b.WriteByte(p.s[p.i+1])
				p.i += 2
				continue
			}
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				p.i++
				p.addComment(b.String())
				return
			}
		}
		b.WriteByte(c)
		p.i++
	}
	p.fail(start, "unterminated comment")
	p.addComment(b.String())
}

func (p *arParser) addComment(text string) {
	text = strings.Join(strings.Fields(text), " ")
	if text != "" {
		p.comments = append(p.comments, text)
	}
}

func (p *arParser) takeComments() string {
	c := strings.Join(p.comments, "; ")
	p.comments = p.comments[:0]
	return c
}

// isSpecial reports the bytes that end a token (RFC 2045 tspecials that
// matter here, plus whitespace).
func isSpecial(c byte) bool {
	switch c {
	case ';', '=', '(', ')', '"':
		return true
	}
	return isWSP(c)
}

// token reads a run of non-special bytes.
func (p *arParser) token() string {
	start := p.i
	for !p.eof() && !isSpecial(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

// word is a token or a quoted string (RFC 8601 allows either nearly
// everywhere).
func (p *arParser) word() string {
	if p.peek() == '"' {
		return p.quoted()
	}
	return p.token()
}

// key reads "ptype.property", allowing CFWS around the dot and quoted
// parts (RFC 8601 Appendix B.7's comment-heavy example).
func (p *arParser) key() string {
	k := p.word()
	if k == "" {
		return ""
	}
	save := p.i
	p.skipCFWS()
	if p.peek() != '.' {
		p.i = save
		return k
	}
	p.i++
	p.skipCFWS()
	return k + "." + p.word()
}

// value reads a property value: a quoted string, or everything up to
// whitespace, ";" or "(" — "=" is allowed so base64 padding in header.b
// survives.
func (p *arParser) value() string {
	if p.peek() == '"' {
		return p.quoted()
	}
	start := p.i
	for !p.eof() {
		c := p.s[p.i]
		if isWSP(c) || c == ';' || c == '(' || c == ')' || c == '"' {
			break
		}
		p.i++
	}
	return p.s[start:p.i]
}

func (p *arParser) quoted() string {
	start := p.i
	p.i++ // "
	var b strings.Builder
	for !p.eof() {
		c := p.s[p.i]
		switch c {
		case '\\':
			if p.i+1 < len(p.s) {
				b.WriteByte(p.s[p.i+1])
				p.i += 2
				continue
			}
		case '"':
			p.i++
			return b.String()
		case '\r', '\n':
			// Unfolded value: a fold inside quotes is one space.
			if b.Len() > 0 && !strings.HasSuffix(b.String(), " ") {
				b.WriteByte(' ')
			}
			p.i++
			continue
		}
		b.WriteByte(c)
		p.i++
	}
	p.fail(start, "unterminated quoted string")
	return b.String()
}

// skipSegment moves to the next ";" after a problem.
func (p *arParser) skipSegment() {
	for !p.eof() && p.s[p.i] != ';' {
		if p.s[p.i] == '(' {
			p.comment()
			continue
		}
		if p.s[p.i] == '"' {
			p.quoted()
			continue
		}
		p.i++
	}
	p.comments = p.comments[:0]
}

// parse reads the whole value: "[authserv-id [version]] ; result ; …".
func (p *arParser) parse() AuthResults {
	var res AuthResults
	var pendingFrom string
	p.skipCFWS()
	p.authservID(&res)
	for {
		p.skipCFWS()
		if p.eof() {
			break
		}
		if p.peek() == ';' {
			p.i++
			p.comments = p.comments[:0]
			continue
		}
		r, ok := p.result()
		if ok {
			r, ok = fromPair(r)
		}
		switch {
		case !ok:
		case r.Method == "from" && r.Props == nil:
			// Old Yahoo writes "from=example.com; dkim=pass": a header.from
			// for the result that follows, not a method.
			pendingFrom = r.Result
		default:
			if pendingFrom != "" && r.Props["header.from"] == "" {
				if r.Props == nil {
					r.Props = map[string]string{}
				}
				r.Props["header.from"] = pendingFrom
			}
			pendingFrom = ""
			res.Results = append(res.Results, r)
		}
	}
	return res
}

// authservID reads "authserv-id [version] ;". Microsoft omits it: when the
// first token is followed by "=", it is a result and the id is "".
func (p *arParser) authservID(res *AuthResults) {
	start := p.i
	id := p.word()
	p.skipCFWS()
	if p.peek() == '=' {
		p.i = start
		p.comments = p.comments[:0]
		return
	}
	res.AuthservID = id
	if id == "" && !p.eof() {
		if p.peek() != ';' {
			p.fail(p.i, "unexpected %q where the authserv-id belongs", string(p.peek()))
			p.skipSegment()
			return
		}
		p.fail(p.i, "nothing where the authserv-id belongs")
	}
	if !p.eof() && p.peek() != ';' {
		vstart := p.i
		v := p.token()
		if v != "" && strings.Trim(v, "0123456789") != "" {
			// Old Yahoo: "mta….yahoo.com  from=example.com; dkim=pass".
			// Read on as if the ";" were there.
			p.fail(vstart, "missing \";\" after authserv-id %q", id)
			p.i = vstart
			p.comments = p.comments[:0]
			return
		}
		if v == "" {
			p.fail(vstart, "unexpected %q after authserv-id %q", string(p.peek()), id)
			p.skipSegment()
			return
		}
		res.Version = v
		p.skipCFWS()
		if !p.eof() && p.peek() != ';' {
			p.fail(p.i, "unexpected %q after version %q", p.peek(), v)
			p.skipSegment()
		}
	}
	p.comments = p.comments[:0]
}

// result reads one "method[/version] = result reason=… ptype.prop=…" up
// to the next ";" or the end.
func (p *arParser) result() (Result, bool) {
	start := p.i
	method := strings.ToLower(p.word())
	if method == "" {
		p.fail(p.i, "unexpected %q where a method belongs", p.peek())
		p.i++
		p.skipSegment()
		return Result{}, false
	}
	// A method version: "dkim/1", or "dkim (c) / 1" with CFWS around "/".
	method, _, slash := strings.Cut(method, "/")
	if method == "" {
		p.fail(start, "method name missing before \"/\"")
		p.skipSegment()
		return Result{}, false
	}
	p.skipCFWS()
	if p.peek() == '/' {
		p.i++
		slash = true
		p.skipCFWS()
	}
	if slash && p.peek() != '=' {
		p.token()
		p.skipCFWS()
	}
	if p.peek() != '=' {
		// "none" alone means no results. A bare domain between results is
		// Microsoft's receiving-tenant marker ("…; contoso.com; dkim=…").
		if p.eof() || p.peek() == ';' {
			p.comments = p.comments[:0]
			if method == "none" || strings.Contains(method, ".") {
				return Result{}, false
			}
		}
		p.fail(start, "method %q has no result", method)
		p.skipSegment()
		return Result{}, false
	}
	p.i++ // =
	p.skipCFWS()
	r := Result{Method: method, Result: strings.ToLower(p.word())}
	if r.Result == "" {
		p.fail(start, "method %q has no result", method)
		p.skipSegment()
		return Result{}, false
	}
	for {
		p.skipCFWS()
		if p.eof() || p.peek() == ';' {
			break
		}
		kstart := p.i
		key := strings.ToLower(p.key())
		if knownMethods[key] && p.startsResult() {
			// "spf=pass smtp.mailfrom=a dkim=pass …": a ";" is missing.
			p.fail(kstart, "missing \";\" before %q", key)
			p.i = kstart
			break
		}
		if key == "" {
			p.fail(p.i, "unexpected %q in %s result", p.peek(), method)
			if p.peek() == '"' {
				p.quoted()
			} else {
				p.i++
			}
			continue
		}
		p.skipCFWS()
		if p.peek() != '=' {
			p.fail(kstart, "property %q of %s has no value", key, method)
			continue
		}
		p.i++
		p.skipCFWS()
		v := p.value()
		if key == "reason" {
			if r.Reason == "" {
				r.Reason = v
			}
			continue
		}
		if r.Props == nil {
			r.Props = make(map[string]string, 4)
		}
		if _, dup := r.Props[key]; !dup {
			r.Props[key] = v
		}
	}
	r.Comment = p.takeComments()
	return r, true
}

// pairProp is the property naming the domain of a method, for the
// "spfDomain=example.com spfResult=pass" pairs some receivers write.
var pairProp = map[string]string{"spf": "smtp.mailfrom", "dkim": "header.d", "dmarc": "header.from"}

// fromPair rewrites a "<method>Domain=d <method>Result=r" pair (either
// order) as "<method>=r" with the domain property; other results are
// returned as they are. ok is false for a pair without its result.
func fromPair(r Result) (Result, bool) {
	for m, prop := range pairProp {
		var domain, result string
		switch r.Method {
		case m + "domain":
			domain, result = r.Result, r.Props[m+"result"]
		case m + "result":
			domain, result = r.Props[m+"domain"], r.Result
		default:
			continue
		}
		out := Result{Method: m, Result: strings.ToLower(result), Reason: r.Reason, Comment: r.Comment, Props: map[string]string{}}
		for k, v := range r.Props {
			if k != m+"domain" && k != m+"result" {
				out.Props[k] = v
			}
		}
		if domain != "" {
			out.Props[prop] = domain
		}
		return out, out.Result != ""
	}
	return r, true
}

// knownMethods are the method names a result can start with; a bare
// "name=" inside a result that is one of them starts the next result.
var knownMethods = map[string]bool{
	"spf": true, "dkim": true, "dmarc": true, "arc": true, "iprev": true, "auth": true,
	"sender-id": true, "domainkeys": true, "dkim-adsp": true, "dkim-atps": true,
	"bimi": true, "compauth": true, "x-ptr": true, "rrvs": true, "vbr": true,
}

// startsResult reports, just after a key, whether "= result-word"
// follows: the key is a method, not a property.
func (p *arParser) startsResult() bool {
	save, saveC := p.i, len(p.comments)
	defer func() { p.i, p.comments = save, p.comments[:saveC] }()
	p.skipCFWS()
	if p.peek() != '=' {
		return false
	}
	p.i++
	p.skipCFWS()
	return resultWords[strings.ToLower(p.token())]
}

// resultWords are the result values of RFC 8601 §2.7 and what providers
// write beside them.
var resultWords = map[string]bool{
	"pass": true, "fail": true, "softfail": true, "neutral": true, "none": true,
	"temperror": true, "permerror": true, "policy": true, "hardfail": true,
	"bestguesspass": true, "unknown": true, "perm_fail": true, "temp_fail": true,
	"discard": true, "nxdomain": true, "signed": true,
}

// Prop returns a property, "" when absent.
func (r Result) Prop(key string) string { return r.Props[strings.ToLower(key)] }

// Typed converts the result to go-msgauth's typed model, for code that
// already works with authres (e.g. to re-format it with authres.Format).
func (r Result) Typed() authres.Result {
	v := authres.ResultValue(r.Result)
	switch r.Method {
	case "spf":
		return &authres.SPFResult{Value: v, Reason: r.Reason, From: r.Prop("smtp.mailfrom"), Helo: r.Prop("smtp.helo")}
	case "dkim":
		return &authres.DKIMResult{Value: v, Reason: r.Reason, Domain: r.Prop("header.d"), Identifier: r.Prop("header.i")}
	case "dmarc":
		return &authres.DMARCResult{Value: v, Reason: r.Reason, From: r.Prop("header.from")}
	case "auth":
		return &authres.AuthResult{Value: v, Reason: r.Reason, Auth: r.Prop("smtp.auth")}
	case "iprev":
		return &authres.IPRevResult{Value: v, Reason: r.Reason, IP: r.Prop("policy.iprev")}
	}
	params := make(map[string]string, len(r.Props)+1)
	for k, val := range r.Props {
		params[k] = val
	}
	if r.Reason != "" {
		params["reason"] = r.Reason
	}
	return &authres.GenericResult{Method: r.Method, Value: v, Params: params}
}

// Find returns the results of one method, in header order.
func (a AuthResults) Find(method string) []Result {
	var out []Result
	for _, r := range a.Results {
		if r.Method == method {
			out = append(out, r)
		}
	}
	return out
}
