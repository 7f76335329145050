package diagnose

import (
	"bufio"
	"net"
	"regexp"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// Signature is one DKIM signature of a canary: which key signed it.
type Signature struct {
	Domain   string // d=, lower case
	Selector string // s=, lower case
}

// Signatures returns the DKIM signatures (d= and s=) in a header block,
// topmost first. Malformed signatures are skipped: the receiver's verdict
// already says what it made of them.
func Signatures(header string) []Signature {
	h, ok := parseHeader(header)
	if !ok {
		return nil
	}
	var out []Signature
	for _, v := range h.Values("DKIM-Signature") {
		tags := map[string]string{}
		for _, part := range strings.Split(v, ";") {
			k, val, ok := strings.Cut(part, "=")
			if !ok {
				continue
			}
			tags[strings.TrimSpace(strings.ToLower(k))] = strings.Join(strings.Fields(val), "")
		}
		if tags["d"] != "" && tags["s"] != "" {
			out = append(out, Signature{Domain: strings.ToLower(tags["d"]), Selector: strings.ToLower(tags["s"])})
		}
	}
	return out
}

var (
	clientIP  = regexp.MustCompile(`(?i)\bclient-ip=([0-9a-f.:]+)`)
	ipLiteral = regexp.MustCompile(`[\[(]([0-9a-fA-F.:]*[.:][0-9a-fA-F.:]*)[\])]`)
	// Yahoo's Received-SPF has no client-ip, only the comment: "(domain
	// of x designates 192.0.2.1 as permitted sender)", "does not
	// designate 192.0.2.1 as …".
	designates = regexp.MustCompile(`(?i)\bdesignates? ([0-9a-f.:]+) as permitted sender`)
	// Yahoo's Received names the client bare: "from 192.0.2.1 (EHLO x)".
	bareFrom = regexp.MustCompile(`(?i)^\s*from\s+([0-9a-f.:]+[.:][0-9a-f.:]*)\s`)
)

// SourceIP returns the address that delivered the canary to the provider:
// Received-SPF's client-ip (or the address its comment names), else the
// address in the from clause of the topmost Received header that names
// one; nil when none does. Received headers naming no address are the
// provider's own hand-overs by name (Dovecot's "from mx.example by host
// with LMTP") and are passed over.
func SourceIP(header string) net.IP {
	h, ok := parseHeader(header)
	if !ok {
		return nil
	}
	spf := h.Get("Received-SPF")
	for _, re := range []*regexp.Regexp{clientIP, designates} {
		if m := re.FindStringSubmatch(spf); m != nil {
			if ip := net.ParseIP(m[1]); ip != nil {
				return ip
			}
		}
	}
	for _, rcvd := range h.Values("Received") {
		from, _, _ := strings.Cut(rcvd, " by ")
		if m := bareFrom.FindStringSubmatch(from); m != nil {
			// "from 127.0.0.1 by …" is the provider's own hand-over (Yahoo's
			// HTTP hop), not the sender's relay.
			if ip := net.ParseIP(m[1]); ip != nil && !ip.Equal(net.IPv4(127, 0, 0, 1)) && !ip.Equal(net.IPv6loopback) {
				return ip
			}
			return nil
		}
		for _, m := range ipLiteral.FindAllStringSubmatch(from, -1) {
			if ip := net.ParseIP(strings.TrimPrefix(strings.ToLower(m[1]), "ipv6:")); ip != nil {
				return ip
			}
		}
	}
	return nil
}

func parseHeader(header string) (textproto.Header, bool) {
	if header == "" {
		return textproto.Header{}, false
	}
	if !strings.HasSuffix(header, "\r\n\r\n") && !strings.HasSuffix(header, "\n\n") {
		header += "\r\n\r\n"
	}
	h, err := textproto.ReadHeader(bufio.NewReader(strings.NewReader(header)))
	return h, err == nil
}
