package targets_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/targets"
)

const dnsMinimal = `
senders:
  - name: m365
    host: smtp.example.com
    from: otp@example.com
mailboxes:
  - name: gmail
    provider: gmail
    address: seed@gmail.com
    auth: {username: seed@gmail.com, password: pw}
probes:
  - name: otp
    schedule: "@every 5m"
    senders: [m365]
    mailboxes: [gmail]
`

func TestDNSChecksDefaults(t *testing.T) {
	c, err := targets.Parse([]byte(dnsMinimal), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d := c.DNSChecks
	if d.ScheduleSpec() != targets.DefaultDNSSchedule || d.Interval() != 5*time.Minute || d.Disabled {
		t.Errorf("defaults: schedule %q interval %v disabled %v", d.ScheduleSpec(), d.Interval(), d.Disabled)
	}
	if len(d.ServerAddrs()) != 0 || d.Validate() != nil {
		t.Errorf("defaults: servers %v, validate %v", d.ServerAddrs(), d.Validate())
	}
}

func TestDNSChecksParse(t *testing.T) {
	c, err := targets.Parse([]byte(dnsMinimal+`
dns_checks:
  schedule: "*/2 * * * *"
  resolver:
    servers: ["127.0.0.1:5353", "192.0.2.53", "[2001:db8::53]:53"]
    timeout: 3s
    retries: 1
  domains:
    - name: example.org
      selectors: [s2026, Selector1]
`), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d := c.DNSChecks
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if d.Interval() != 2*time.Minute {
		t.Errorf("interval = %v, want 2m", d.Interval())
	}
	if got, want := d.ServerAddrs(), []string{"127.0.0.1:5353", "192.0.2.53:53", "[2001:db8::53]:53"}; !reflect.DeepEqual(got, want) {
		t.Errorf("servers = %v, want %v", got, want)
	}
	if d.Resolver.Timeout != 3*time.Second || d.Resolver.Retries != 1 {
		t.Errorf("resolver = %+v", d.Resolver)
	}
	if len(d.Domains) != 1 || d.Domains[0].Name != "example.org" || len(d.Domains[0].Selectors) != 2 {
		t.Errorf("domains = %+v", d.Domains)
	}
}

func TestDNSChecksUnknownField(t *testing.T) {
	_, err := targets.Parse([]byte(dnsMinimal+"dns_checks:\n  schedul: \"@every 1m\"\n"), t.TempDir())
	var e *targets.Error
	if !errors.As(err, &e) || e.Path != "dns_checks.schedul" {
		t.Errorf("err = %v, want an unknown field error at dns_checks.schedul", err)
	}
}

func TestDNSChecksInvalid(t *testing.T) {
	for _, tc := range []struct {
		d    targets.DNSChecks
		path string
	}{
		{targets.DNSChecks{Schedule: "every five minutes"}, "dns_checks.schedule"},
		{targets.DNSChecks{Resolver: targets.DNSResolver{Servers: []string{"dns.example.com"}}}, "dns_checks.resolver.servers[0]"},
		{targets.DNSChecks{Resolver: targets.DNSResolver{Servers: []string{"127.0.0.1:dns"}}}, "dns_checks.resolver.servers[0]"},
		{targets.DNSChecks{Resolver: targets.DNSResolver{Timeout: -time.Second}}, "dns_checks.resolver.timeout"},
		{targets.DNSChecks{Resolver: targets.DNSResolver{Retries: -1}}, "dns_checks.resolver.retries"},
		{targets.DNSChecks{Domains: []targets.DNSDomain{{Name: "localhost"}}}, "dns_checks.domains[0] (localhost).name"},
		{targets.DNSChecks{Domains: []targets.DNSDomain{{Name: "exa mple.com"}}}, "dns_checks.domains[0] (exa mple.com).name"},
		{targets.DNSChecks{Domains: []targets.DNSDomain{{Name: "example.com", Selectors: []string{"bad selector"}}}}, "dns_checks.domains[0] (example.com).selectors[0]"},
	} {
		err := tc.d.Validate()
		var e *targets.Error
		if !errors.As(err, &e) || e.Path != tc.path {
			t.Errorf("%+v: err = %v, want one at %s", tc.d, err, tc.path)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("error is not one line: %q", err)
		}
	}
}
