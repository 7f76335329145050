package verify

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// SpamSignals are the spam verdicts filters wrote into the header, kept
// as structured data. Only the filters present are set.
type SpamSignals struct {
	Microsoft    *MicrosoftSpam    `json:"microsoft,omitempty"`
	SpamAssassin *SpamAssassinSpam `json:"spamassassin,omitempty"`
	Rspamd       *RspamdSpam       `json:"rspamd,omitempty"`
	// Proofpoint is X-Proofpoint-Spam-Details (iCloud and many
	// enterprises): rule=, score=, spamscore=, … as written.
	Proofpoint map[string]string `json:"proofpoint,omitempty"`
	Errors     []string          `json:"errors,omitempty"`
}

// MicrosoftSpam is what Exchange Online Protection wrote.
type MicrosoftSpam struct {
	// Report is every field of X-Forefront-Antispam-Report.
	Report map[string]string `json:"report,omitempty"`
	SFV    string            `json:"sfv,omitempty"` // spam filter verdict: NSPM, SPM, SKN, SKA, SKB, SKS, SKQ, SFE, BLK
	CAT    string            `json:"cat,omitempty"` // protection policy applied: NONE, SPM, HSPM, BULK, PHSH, HPHSH, SPOOF, …
	IPV    string            `json:"ipv,omitempty"` // connection filter: NLI, CAL
	CIP    string            `json:"cip,omitempty"` // connecting IP
	SCL    *int              `json:"scl,omitempty"` // -1..9; 5+ is spam
	// OrgSCL is X-MS-Exchange-Organization-SCL (what delivery acted on).
	OrgSCL *int `json:"org_scl,omitempty"`
	// Antispam is X-Microsoft-Antispam; BCL (bulk complaint level, 0..9)
	// and PCL are lifted out.
	Antispam map[string]string `json:"antispam,omitempty"`
	BCL      *int              `json:"bcl,omitempty"`
	PCL      *int              `json:"pcl,omitempty"`
}

// SpamAssassinSpam is X-Spam-Status / X-Spam-Flag.
type SpamAssassinSpam struct {
	Spam      bool     `json:"spam"`
	Score     *float64 `json:"score,omitempty"`
	Required  *float64 `json:"required,omitempty"`
	Tests     []string `json:"tests,omitempty"`
	Autolearn string   `json:"autolearn,omitempty"`
	Version   string   `json:"version,omitempty"`
}

// RspamdSpam is X-Spamd-Result / X-Rspamd-Action.
type RspamdSpam struct {
	Spam      *bool          `json:"spam,omitempty"`
	Score     *float64       `json:"score,omitempty"`
	Threshold *float64       `json:"threshold,omitempty"`
	Action    string         `json:"action,omitempty"`
	Symbols   []RspamdSymbol `json:"symbols,omitempty"`
}

// RspamdSymbol is one rule that fired.
type RspamdSymbol struct {
	Name    string   `json:"name"`
	Score   float64  `json:"score"`
	Options []string `json:"options,omitempty"`
}

// Empty reports whether no filter left a signal.
func (s SpamSignals) Empty() bool {
	return s.Microsoft == nil && s.SpamAssassin == nil && s.Rspamd == nil && s.Proofpoint == nil && len(s.Errors) == 0
}

// IsSpam is the filters' combined opinion: spam when any says spam, ham
// when one spoke and none says spam; known is false when none spoke.
func (s SpamSignals) IsSpam() (spam, known bool) {
	if m := s.Microsoft; m != nil {
		switch {
		case m.SFV == "SPM" || m.SFV == "SKS" || m.SFV == "BLK" || m.SFV == "SKB":
			return true, true
		case m.SCL != nil && *m.SCL >= 5, m.OrgSCL != nil && *m.OrgSCL >= 5:
			return true, true
		}
		known = m.SFV != "" || m.SCL != nil || m.OrgSCL != nil
	}
	if a := s.SpamAssassin; a != nil {
		if a.Spam {
			return true, true
		}
		known = true
	}
	if r := s.Rspamd; r != nil {
		if (r.Spam != nil && *r.Spam) || (r.Action != "" && r.Action != "no action" && r.Action != "greylist") {
			return true, true
		}
		known = known || r.Spam != nil || r.Action != ""
	}
	if p := s.Proofpoint; p != nil {
		if strings.EqualFold(p["rule"], "spam") {
			return true, true
		}
		known = known || p["rule"] != ""
	}
	return false, known
}

// ParseSpamSignals reads the spam headers of a header block. Only the
// topmost instance of each header is read: that is the one the receiver
// wrote last.
func ParseSpamSignals(h textproto.Header) SpamSignals {
	var s SpamSignals
	s.Microsoft = parseMicrosoft(h, &s.Errors)
	s.SpamAssassin = parseSpamAssassin(h, &s.Errors)
	s.Rspamd = parseRspamd(h, &s.Errors)
	if v := h.Get("X-Proofpoint-Spam-Details"); v != "" {
		s.Proofpoint = map[string]string{}
		for _, f := range strings.Fields(v) {
			if k, val, ok := strings.Cut(f, "="); ok && k != "" {
				s.Proofpoint[strings.ToLower(k)] = val
			}
		}
	}
	return s
}

func parseMicrosoft(h textproto.Header, errs *[]string) *MicrosoftSpam {
	report, org, as := h.Get("X-Forefront-Antispam-Report"), h.Get("X-MS-Exchange-Organization-SCL"), h.Get("X-Microsoft-Antispam")
	if report == "" && org == "" && as == "" {
		return nil
	}
	m := &MicrosoftSpam{}
	if report != "" {
		m.Report = colonFields(report)
		m.SFV, m.CAT, m.IPV, m.CIP = m.Report["SFV"], m.Report["CAT"], m.Report["IPV"], m.Report["CIP"]
		m.SCL = intField(m.Report, "SCL", "X-Forefront-Antispam-Report", errs)
	}
	if org = strings.TrimSpace(org); org != "" {
		m.OrgSCL = intField(map[string]string{"SCL": org}, "SCL", "X-MS-Exchange-Organization-SCL", errs)
	}
	if as != "" {
		m.Antispam = colonFields(as)
		m.BCL = intField(m.Antispam, "BCL", "X-Microsoft-Antispam", errs)
		m.PCL = intField(m.Antispam, "PCL", "X-Microsoft-Antispam", errs)
	}
	return m
}

// colonFields splits Microsoft's "K:V;K:V;" lists. Keys are upper-cased;
// a value may itself contain ":" (IPv6 in CIP).
func colonFields(v string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(v, ";") {
		part = strings.TrimSpace(part)
		k, val, ok := strings.Cut(part, ":")
		if !ok || k == "" {
			continue
		}
		k = strings.ToUpper(strings.TrimSpace(k))
		if _, dup := out[k]; !dup {
			out[k] = strings.TrimSpace(val)
		}
	}
	return out
}

func intField(m map[string]string, key, header string, errs *[]string) *int {
	v, ok := m[key]
	if !ok || v == "" {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		*errs = append(*errs, fmt.Sprintf("%s: %s is %q, not a number", header, key, truncate(v, 20)))
		return nil
	}
	return &n
}

func parseFloat(v, what, header string, errs *[]string) *float64 {
	f, err := finite(v)
	if err != nil {
		*errs = append(*errs, fmt.Sprintf("%s: %s is %q, not a number", header, what, truncate(v, 20)))
		return nil
	}
	return &f
}

// finite parses a score. NaN and ±Inf are refused: a sender can forge
// these headers, and encoding/json cannot write such values, so one would
// make the whole verdict unstorable.
func finite(v string) (float64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
		err = fmt.Errorf("%q is not finite", v)
	}
	return f, err
}

// parseSpamAssassin reads "Yes, score=6.1 required=5.0 tests=A,B
// autolearn=no version=3.4.6" (older versions write hits=).
func parseSpamAssassin(h textproto.Header, errs *[]string) *SpamAssassinSpam {
	status, flag := h.Get("X-Spam-Status"), strings.TrimSpace(h.Get("X-Spam-Flag"))
	if status == "" && flag == "" {
		return nil
	}
	a := &SpamAssassinSpam{Spam: strings.EqualFold(flag, "yes")}
	if status == "" {
		return a
	}
	verdict, rest, _ := strings.Cut(status, ",")
	if strings.EqualFold(strings.TrimSpace(verdict), "yes") {
		a.Spam = true
	}
	// The tests list is folded after commas: rejoin "A, B" first.
	rest = strings.ReplaceAll(rest, ", ", ",")
	for _, f := range strings.Fields(rest) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		switch strings.ToLower(k) {
		case "score", "hits":
			a.Score = parseFloat(v, k, "X-Spam-Status", errs)
		case "required":
			a.Required = parseFloat(v, k, "X-Spam-Status", errs)
		case "tests":
			for _, t := range strings.Split(v, ",") {
				if t = strings.TrimSpace(t); t != "" && t != "none" {
					a.Tests = append(a.Tests, t)
				}
			}
		case "autolearn":
			a.Autolearn = v
		case "version":
			a.Version = v
		}
	}
	return a
}

// parseRspamd reads "default: False [3.40 / 15.00]; SYM(1.00)[opt,…]; …".
func parseRspamd(h textproto.Header, errs *[]string) *RspamdSpam {
	res, action := h.Get("X-Spamd-Result"), strings.TrimSpace(h.Get("X-Rspamd-Action"))
	if res == "" && action == "" {
		return nil
	}
	r := &RspamdSpam{Action: strings.ToLower(action)}
	if res == "" {
		return r
	}
	parts := splitOutside(res, ';', '[', ']')
	head := strings.TrimSpace(parts[0])
	if _, verdict, ok := strings.Cut(head, ":"); ok {
		verdict = strings.TrimSpace(verdict)
		word, scores, _ := strings.Cut(verdict, "[")
		switch strings.ToLower(strings.TrimSpace(word)) {
		case "true":
			t := true
			r.Spam = &t
		case "false":
			f := false
			r.Spam = &f
		}
		scores = strings.TrimSuffix(strings.TrimSpace(scores), "]")
		if sc, th, ok := strings.Cut(scores, "/"); ok {
			r.Score = parseFloat(strings.TrimSpace(sc), "score", "X-Spamd-Result", errs)
			r.Threshold = parseFloat(strings.TrimSpace(th), "threshold", "X-Spamd-Result", errs)
		}
	} else {
		*errs = append(*errs, fmt.Sprintf("X-Spamd-Result: no metric in %q", truncate(head, 40)))
	}
	for _, p := range parts[1:] {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		name, rest, ok := strings.Cut(p, "(")
		if !ok {
			r.Symbols = append(r.Symbols, RspamdSymbol{Name: p})
			continue
		}
		sym := RspamdSymbol{Name: strings.TrimSpace(name)}
		score, opts, _ := strings.Cut(rest, ")")
		if f, err := finite(strings.TrimSpace(score)); err == nil {
			sym.Score = f
		} else {
			*errs = append(*errs, fmt.Sprintf("X-Spamd-Result: symbol %s has score %q", truncate(sym.Name, 40), truncate(score, 20)))
		}
		opts = strings.TrimSpace(opts)
		if strings.HasPrefix(opts, "[") {
			opts = strings.TrimSuffix(strings.TrimPrefix(opts, "["), "]")
			for _, o := range strings.Split(opts, ",") {
				if o = strings.TrimSpace(o); o != "" {
					sym.Options = append(sym.Options, o)
				}
			}
		}
		r.Symbols = append(r.Symbols, sym)
	}
	return r
}

// splitOutside splits s at sep, except between open and close.
func splitOutside(s string, sep, open, close byte) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case open:
			depth++
		case close:
			if depth > 0 {
				depth--
			}
		case sep:
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}
