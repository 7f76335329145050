package verify

import (
	"fmt"
	"strings"
)

// TrustNoID is the configured authserv-id meaning "the receiver writes
// no authserv-id" (Microsoft 365 / Outlook.com): headers without one are
// trusted.
const TrustNoID = "none"

// AuthservIDs is a parsed authserv_id setting: the ids one receiver
// writes. Receivers rarely write a single fixed id: iCloud stamps one per
// method (spf.icloud.com, dkim-verifier.icloud.com, …), Yahoo one per
// host, OpenDKIM/OpenDMARC with AuthservIDWithJobID "host/JOBID".
type AuthservIDs struct {
	exact    []string // lower case
	suffixes []string // ".example.com" from "*.example.com"
	none     bool     // "none": a header without an authserv-id
}

// ParseAuthservIDs reads a list of ids separated by commas or
// whitespace. An entry is a host ("mx.google.com"), a suffix wildcard
// ("*.yahoo.com": any host under yahoo.com, not yahoo.com itself) or
// "none". Any id also matches with a "/JOBID" suffix. Bad entries are
// reported and left out.
func ParseAuthservIDs(s string) (AuthservIDs, error) {
	var ids AuthservIDs
	var bad []string
	for _, e := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
		switch {
		case strings.EqualFold(e, TrustNoID):
			ids.none = true
		case strings.HasPrefix(e, "*."):
			rest := strings.ToLower(e[2:])
			if !strings.Contains(rest, ".") || !validID(rest) {
				bad = append(bad, fmt.Sprintf("%q (a wildcard needs a domain with a dot after \"*.\")", e))
				continue
			}
			ids.suffixes = append(ids.suffixes, "."+rest)
		case validID(e):
			ids.exact = append(ids.exact, strings.ToLower(e))
		default:
			bad = append(bad, fmt.Sprintf("%q", e))
		}
	}
	if len(bad) > 0 {
		return ids, fmt.Errorf("bad authserv-id %s", strings.Join(bad, ", "))
	}
	return ids, nil
}

// MustAuthservIDs is ParseAuthservIDs keeping what parsed, for callers
// whose setting was validated already.
func MustAuthservIDs(s string) AuthservIDs {
	ids, _ := ParseAuthservIDs(s)
	return ids
}

// validID accepts what receivers write as an authserv-id: a dot-atom or
// token (RFC 8601 §2.2), without the characters that would make it
// ambiguous in a list or a header.
func validID(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c > '~' || strings.IndexByte(`;,()"=*/\`, c) >= 0 {
			return false
		}
	}
	return true
}

// Empty reports a setting that trusts nothing.
func (a AuthservIDs) Empty() bool { return !a.none && len(a.exact) == 0 && len(a.suffixes) == 0 }

// Match reports whether a header's authserv-id is one of the set.
func (a AuthservIDs) Match(got string) bool {
	if got == "" {
		return a.none
	}
	g := strings.ToLower(got)
	if a.matchHost(g) {
		return true
	}
	// "host/JOBID" (OpenDKIM, OpenDMARC with AuthservIDWithJobID).
	if i := strings.IndexByte(g, '/'); i > 0 && i < len(g)-1 {
		return a.matchHost(g[:i])
	}
	return false
}

func (a AuthservIDs) matchHost(g string) bool {
	for _, e := range a.exact {
		if g == e {
			return true
		}
	}
	for _, s := range a.suffixes {
		if len(g) > len(s) && strings.HasSuffix(g, s) {
			return true
		}
	}
	return false
}

// String is the canonical form: entries joined by ", ".
func (a AuthservIDs) String() string {
	var parts []string
	if a.none {
		parts = append(parts, TrustNoID)
	}
	parts = append(parts, a.exact...)
	for _, s := range a.suffixes {
		parts = append(parts, "*"+s)
	}
	return strings.Join(parts, ", ")
}
