package dnscheck

import (
	"cmp"
	"fmt"
	"slices"
)

// Severity ranks findings. Error and Critical make `otpprobe check dns`
// exit non-zero.
type Severity int

const (
	SeverityNote     Severity = iota + 1 // worth knowing, nothing is broken
	SeverityWarning                      // weakens delivery or protection
	SeverityError                        // broken, but not for every message
	SeverityCritical                     // OTP mail fails or is junked now
)

var severityNames = map[Severity]string{
	SeverityNote:     "note",
	SeverityWarning:  "warning",
	SeverityError:    "error",
	SeverityCritical: "critical",
}

func (s Severity) String() string {
	if n, ok := severityNames[s]; ok {
		return n
	}
	return fmt.Sprintf("Severity(%d)", int(s))
}

// MarshalText writes the name, so JSON carries "critical", not 4.
func (s Severity) MarshalText() ([]byte, error) {
	if _, ok := severityNames[s]; !ok {
		return nil, fmt.Errorf("dnscheck: invalid severity %d", int(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText parses a name written by MarshalText.
func (s *Severity) UnmarshalText(b []byte) error {
	for k, v := range severityNames {
		if v == string(b) {
			*s = k
			return nil
		}
	}
	return fmt.Errorf("dnscheck: unknown severity %q", b)
}

// Finding is one observation about a domain's DNS.
type Finding struct {
	Severity Severity `json:"severity"`
	Code     string   `json:"code"`    // stable identifier, e.g. "spf.include_servfail"
	Name     string   `json:"name"`    // the record's owner name, fully qualified
	Data     string   `json:"data"`    // what was observed: record text, rcode, count
	Message  string   `json:"message"` // one sentence for a person
}

func (f Finding) String() string {
	return fmt.Sprintf("%s %s %s: %s", f.Severity, f.Code, f.Name, f.Message)
}

// sortFindings orders by severity (worst first), then code and name.
func sortFindings(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		if c := cmp.Compare(b.Severity, a.Severity); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Code, b.Code); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
}
