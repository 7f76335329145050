package targets

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"
)

// DefaultDNSSchedule is how often the DNS posture is checked when
// dns_checks.schedule is left out: within one interval of a record
// changing, the change is an event.
const DefaultDNSSchedule = "@every 5m"

// DNSChecks configures the scheduled DNS posture checks (dns_checks:).
// The domains checked are the senders' From domains plus Domains; the
// DKIM selectors are the m365 preset's pair, those listed here and those
// seen signing canaries.
type DNSChecks struct {
	Schedule string      `yaml:"schedule"` // cron spec like probes'; default DefaultDNSSchedule
	Disabled bool        `yaml:"disabled"` // no scheduled checks (diagnoses still check on demand)
	Resolver DNSResolver `yaml:"resolver"`
	Domains  []DNSDomain `yaml:"domains"`
}

// DNSResolver selects the servers the checks ask.
type DNSResolver struct {
	Servers []string      `yaml:"servers"` // "ip" or "ip:port"; empty: /etc/resolv.conf
	Timeout time.Duration `yaml:"timeout"` // per try; 0: the resolver's default (2s)
	Retries int           `yaml:"retries"` // 0: the resolver's default (2)
}

// DNSDomain is a domain to check besides the senders' From domains, or
// more about one of them.
type DNSDomain struct {
	Name string `yaml:"name"`
	// Selectors sign mail of the domain now: a missing key is critical.
	Selectors []string `yaml:"selectors"`
}

var (
	dnsLabel    = regexp.MustCompile(`^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$`)
	dkimLabelRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62})$`)
)

// ScheduleSpec returns the schedule with the default applied.
func (d DNSChecks) ScheduleSpec() string {
	if d.Schedule == "" {
		return DefaultDNSSchedule
	}
	return d.Schedule
}

// Interval is how far apart two scheduled checks are at most, computed
// from the schedule; a snapshot older than this is stale.
func (d DNSChecks) Interval() time.Duration {
	s, err := CronParser.Parse(d.ScheduleSpec())
	if err != nil {
		return 5 * time.Minute
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := s.Next(t0)
	return s.Next(t1).Sub(t1)
}

// ServerAddrs returns the resolver servers as "ip:port", port 53 added
// where none was given.
func (d DNSChecks) ServerAddrs() []string {
	out := make([]string, 0, len(d.Resolver.Servers))
	for _, s := range d.Resolver.Servers {
		if _, _, err := net.SplitHostPort(s); err != nil {
			s = net.JoinHostPort(s, "53")
		}
		out = append(out, s)
	}
	return out
}

// Validate checks the dns_checks block. Errors are *Error naming the field.
func (d DNSChecks) Validate() error {
	const p = "dns_checks"
	if _, err := CronParser.Parse(d.ScheduleSpec()); err != nil {
		return errorf(field(p, "schedule"), "invalid cron spec %q: %v", d.Schedule, err)
	}
	for i, s := range d.Resolver.Servers {
		host := s
		if h, port, err := net.SplitHostPort(s); err == nil {
			host = h
			if n, err := fmt.Sscanf(port, "%d", new(int)); n != 1 || err != nil {
				return errorf(fmt.Sprintf("%s.resolver.servers[%d]", p, i), "port of %q is not a number", s)
			}
		}
		if net.ParseIP(host) == nil {
			return errorf(fmt.Sprintf("%s.resolver.servers[%d]", p, i), "must be an IP address with an optional port, got %q", s)
		}
	}
	if d.Resolver.Timeout < 0 {
		return errorf(field(p, "resolver.timeout"), "must not be negative, got %v", d.Resolver.Timeout)
	}
	if d.Resolver.Retries < 0 {
		return errorf(field(p, "resolver.retries"), "must not be negative, got %d", d.Resolver.Retries)
	}
	for i, dom := range d.Domains {
		path := item(field(p, "domains"), i, dom.Name)
		if !validDomain(dom.Name) {
			return errorf(field(path, "name"), "must be a domain name like example.com, got %q", dom.Name)
		}
		for j, s := range dom.Selectors {
			if !dkimLabelRe.MatchString(strings.ToLower(s)) {
				return errorf(fmt.Sprintf("%s.selectors[%d]", path, j), "must be a DKIM selector like selector1, got %q", s)
			}
		}
	}
	return nil
}

func validDomain(name string) bool {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	labels := strings.Split(name, ".")
	if len(name) > 253 || len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if !dnsLabel.MatchString(l) {
			return false
		}
	}
	return true
}
