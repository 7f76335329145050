package verify

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// maxARCInstances is RFC 8617 §4.2.1's limit.
const maxARCInstances = 50

// ARCSet is one ARC set (RFC 8617 §4.1): the three header fields that
// share an instance number.
type ARCSet struct {
	Instance int `json:"instance"`
	// AAR is the ARC-Authentication-Results body (the "i=" removed).
	AAR AuthResults `json:"aar"`
	// AMS and AS are the tag lists of ARC-Message-Signature and ARC-Seal
	// (whitespace removed from b= and bh=).
	AMS map[string]string `json:"ams,omitempty"`
	AS  map[string]string `json:"as,omitempty"`
	// CV is the ARC-Seal's cv= tag: what this sealer found for the chain
	// before it.
	CV string `json:"cv"`
	// Raw holds the unfolded header values, for a cryptographic verifier.
	Raw ARCRaw `json:"-"`
}

// ARCRaw keeps the header values of one set as received.
type ARCRaw struct {
	AAR, AMS, AS string
}

// ARCChain is the structure of a message's ARC chain.
type ARCChain struct {
	Instances int `json:"instances"`
	// CV is "none" when there is no ARC set, "fail" when the structure is
	// broken or a sealer recorded cv=fail, else "pass". A "pass" from
	// ParseARC only means the structure is intact: Verified tells
	// whether the AMS and AS signatures were checked too.
	CV       string   `json:"cv"`
	Valid    bool     `json:"valid"`
	Verified bool     `json:"verified"`
	Error    string   `json:"error,omitempty"`
	Sets     []ARCSet `json:"sets,omitempty"`
	// ParseErrors are problems inside ARC-Authentication-Results bodies;
	// they do not break the chain.
	ParseErrors []string `json:"parse_errors,omitempty"`
}

// ARCVerifier checks the ARC-Message-Signature and ARC-Seal signatures of
// a structurally valid chain (RFC 8617 §5.2 steps 5–6) against the raw
// message. go-msgauth has no ARC verification; an implementation built
// on its DKIM primitives plugs in here.
type ARCVerifier interface {
	VerifyARC(ctx context.Context, message io.Reader, chain ARCChain) error
}

// VerifyARC runs v over a structurally valid chain and records the result.
func VerifyARC(ctx context.Context, v ARCVerifier, message io.Reader, chain ARCChain) ARCChain {
	if !chain.Valid || chain.CV != "pass" {
		return chain
	}
	if err := v.VerifyARC(ctx, message, chain); err != nil {
		chain.CV, chain.Valid, chain.Error = "fail", false, err.Error()
		return chain
	}
	chain.Verified = true
	return chain
}

// ParseARC reads the ARC sets of a header block and checks the chain's
// structure (RFC 8617 §5.2 steps 1–3): at most 50 sets, exactly one of
// each header per instance, instances 1..N without gaps, cv=none only at
// i=1 and cv=pass everywhere else. A cv=fail anywhere ends the chain.
func ParseARC(h textproto.Header) ARCChain {
	aars := h.Values("ARC-Authentication-Results")
	amss := h.Values("ARC-Message-Signature")
	ass := h.Values("ARC-Seal")
	if len(aars)+len(amss)+len(ass) == 0 {
		return ARCChain{CV: "none"}
	}
	sets := map[int]*ARCSet{}
	var problems, warnings []string
	get := func(i int) *ARCSet {
		if s := sets[i]; s != nil {
			return s
		}
		s := &ARCSet{Instance: i}
		sets[i] = s
		return s
	}
	for _, v := range aars {
		i, ar, err := parseAAR(v)
		if i == 0 {
			problems = append(problems, err.Error())
			continue
		}
		s := get(i)
		if s.Raw.AAR != "" {
			problems = append(problems, fmt.Sprintf("instance %d has more than one ARC-Authentication-Results", i))
			continue
		}
		s.AAR, s.Raw.AAR = ar, v
		if err != nil {
			// The AAR's content is informational (RFC 8617 §4.1.1): a
			// result we cannot read does not break the chain.
			warnings = append(warnings, err.Error())
		}
	}
	for _, v := range amss {
		tags, err := ParseTagList(v)
		i, ierr := instance(tags, "ARC-Message-Signature")
		if ierr != nil {
			problems = append(problems, ierr.Error())
			continue
		}
		s := get(i)
		if s.Raw.AMS != "" {
			problems = append(problems, fmt.Sprintf("instance %d has more than one ARC-Message-Signature", i))
			continue
		}
		s.AMS, s.Raw.AMS = tags, v
		if err != nil {
			problems = append(problems, "ARC-Message-Signature: "+err.Error())
		}
	}
	for _, v := range ass {
		tags, err := ParseTagList(v)
		i, ierr := instance(tags, "ARC-Seal")
		if ierr != nil {
			problems = append(problems, ierr.Error())
			continue
		}
		s := get(i)
		if s.Raw.AS != "" {
			problems = append(problems, fmt.Sprintf("instance %d has more than one ARC-Seal", i))
			continue
		}
		s.AS, s.Raw.AS, s.CV = tags, v, strings.ToLower(tags["cv"])
		if err != nil {
			problems = append(problems, "ARC-Seal: "+err.Error())
		}
	}

	chain := ARCChain{Sets: make([]ARCSet, 0, len(sets)), ParseErrors: warnings}
	for _, s := range sets {
		chain.Sets = append(chain.Sets, *s)
	}
	sort.Slice(chain.Sets, func(a, b int) bool { return chain.Sets[a].Instance < chain.Sets[b].Instance })
	if len(chain.Sets) == 0 {
		// ARC headers were present but none had a usable instance.
		chain.CV, chain.Error = "fail", strings.Join(problems, "; ")
		return chain
	}
	chain.Instances = chain.Sets[len(chain.Sets)-1].Instance
	if chain.Instances > maxARCInstances {
		problems = append(problems, fmt.Sprintf("%d ARC sets, more than %d", chain.Instances, maxARCInstances))
	}
	for n, s := range chain.Sets {
		if s.Instance != n+1 {
			problems = append(problems, fmt.Sprintf("ARC instance %d is missing", n+1))
			break
		}
		for _, f := range [...]struct {
			name    string
			present bool
		}{
			{"ARC-Authentication-Results", s.Raw.AAR != ""},
			{"ARC-Message-Signature", s.Raw.AMS != ""},
			{"ARC-Seal", s.Raw.AS != ""},
		} {
			if !f.present {
				problems = append(problems, fmt.Sprintf("instance %d has no %s", s.Instance, f.name))
			}
		}
		switch {
		case s.Raw.AS == "":
		case s.CV == "fail":
			problems = append(problems, fmt.Sprintf("instance %d sealed the chain with cv=fail", s.Instance))
		case s.Instance == 1 && s.CV != "none":
			problems = append(problems, fmt.Sprintf("instance 1 has cv=%s, want none", s.CV))
		case s.Instance > 1 && s.CV != "pass":
			problems = append(problems, fmt.Sprintf("instance %d has cv=%s, want pass", s.Instance, s.CV))
		}
	}
	if len(problems) > 0 {
		chain.CV, chain.Error = "fail", strings.Join(problems, "; ")
		return chain
	}
	chain.CV, chain.Valid = "pass", true
	return chain
}

// instance reads the i= tag of an AMS or AS.
func instance(tags map[string]string, header string) (int, error) {
	v, ok := tags["i"]
	if !ok {
		return 0, fmt.Errorf("%s has no i= tag", header)
	}
	i, err := strconv.Atoi(v)
	if err != nil || i < 1 {
		return 0, fmt.Errorf("%s has invalid instance i=%q", header, v)
	}
	return i, nil
}

// parseAAR reads "i=N; authserv-id [version]; results". It returns i=0
// when the instance cannot be read.
func parseAAR(v string) (int, AuthResults, error) {
	p := newARParser(v, "ARC-Authentication-Results")
	p.skipCFWS()
	if tag := p.token(); !strings.EqualFold(tag, "i") {
		return 0, AuthResults{}, fmt.Errorf("ARC-Authentication-Results does not start with i=")
	}
	p.skipCFWS()
	if p.peek() != '=' {
		return 0, AuthResults{}, fmt.Errorf("ARC-Authentication-Results does not start with i=")
	}
	p.i++
	p.skipCFWS()
	num := p.token()
	i, err := strconv.Atoi(num)
	if err != nil || i < 1 {
		return 0, AuthResults{}, fmt.Errorf("ARC-Authentication-Results has invalid instance i=%q", num)
	}
	p.skipCFWS()
	if p.peek() != ';' {
		return 0, AuthResults{}, fmt.Errorf("ARC-Authentication-Results: no \";\" after i=%d", i)
	}
	p.i++
	p.comments = p.comments[:0]
	ar := p.parse()
	return i, ar, p.err()
}

// ParseTagList parses a DKIM-style tag list (RFC 6376 §3.2) as used by
// DKIM-Signature, ARC-Message-Signature and ARC-Seal. Folding whitespace
// is removed from values; the first of duplicate tags is kept and the
// duplicate reported.
func ParseTagList(v string) (map[string]string, error) {
	tags := map[string]string{}
	var problems []string
	for _, part := range strings.Split(v, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, val, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			problems = append(problems, fmt.Sprintf("malformed tag %q", truncate(part, 40)))
			continue
		}
		if k == "b" || k == "bh" || k == "h" {
			val = strings.Join(strings.Fields(val), "")
		} else {
			val = strings.TrimSpace(val)
		}
		if _, dup := tags[k]; dup {
			problems = append(problems, fmt.Sprintf("duplicate tag %q", k))
			continue
		}
		tags[k] = val
	}
	if len(problems) > 0 {
		return tags, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return tags, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
