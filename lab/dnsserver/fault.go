package dnsserver

import (
	"fmt"
	"strings"
)

// Fault is an injected misbehaviour for one owner name, modelled on the ways
// real DNS breaks during mail incidents.
type Fault int

const (
	FaultNone     Fault = iota
	FaultServfail       // answer SERVFAIL, as a broken or unreachable upstream zone does
	FaultNXDomain       // answer NXDOMAIN even if records exist (a deleted zone)
	FaultTimeout        // never answer: clients time out
	FaultRefused        // answer REFUSED (a lame delegation)
)

var faultNames = [...]string{
	FaultNone:     "none",
	FaultServfail: "servfail",
	FaultNXDomain: "nxdomain",
	FaultTimeout:  "timeout",
	FaultRefused:  "refused",
}

// String returns the name ParseFault accepts.
func (f Fault) String() string {
	if f >= 0 && int(f) < len(faultNames) {
		return faultNames[f]
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

// ParseFault parses a fault name as returned by Fault.String (case-insensitive).
func ParseFault(s string) (Fault, error) {
	for i, n := range faultNames {
		if strings.EqualFold(strings.TrimSpace(s), n) {
			return Fault(i), nil
		}
	}
	return FaultNone, fmt.Errorf("dnsserver: unknown fault %q (want one of %s)", s, strings.Join(faultNames[:], ", "))
}
