package targets

import (
	"fmt"
	"net"
	"net/mail"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/otpprobe/otpprobe/verify"
)

// CronParser is the schedule syntax: 5 fields (minute first), 6 fields
// (seconds first) and descriptors (@every 1m, @hourly), with an optional
// CRON_TZ= prefix. The engine must schedule with it (cron.WithParser or
// Probe.CronSchedule); cron.WithSeconds alone rejects 5-field specs.
var CronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour |
	cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

var validName = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// validate checks c after presets and defaults and returns the first
// problem, in file order.
func (c *Config) validate() error {
	if strings.TrimSpace(c.Agent) == "" {
		return errorf("agent", "required (the host name could not be read)")
	}
	if len(c.Senders) == 0 {
		return errorf("senders", "at least one sender is required")
	}
	senders := map[string]int{}
	for i := range c.Senders {
		s := &c.Senders[i]
		p := item("senders", i, s.Name)
		if err := checkName(p, "senders", s.Name, senders, i); err != nil {
			return err
		}
		switch s.Type {
		case SenderSMTP:
			if err := s.Endpoint.check(p); err != nil {
				return err
			}
			if err := s.Auth.check(field(p, "auth"), false); err != nil {
				return err
			}
		case SenderGraph:
			if err := s.checkGraph(p); err != nil {
				return err
			}
		default:
			return errorf(field(p, "type"), "must be smtp or graph, got %q", s.Type)
		}
		if _, err := mail.ParseAddress(s.From); err != nil {
			return addrError(field(p, "from"), s.From, err)
		}
		if err := checkBareAddress(field(p, "envelope_from"), s.EnvelopeFrom); err != nil {
			return err
		}
		if strings.ContainsAny(s.Helo, " \t\r\n") {
			return errorf(field(p, "helo"), "must be a host name, got %q", s.Helo)
		}
	}
	if len(c.Mailboxes) == 0 {
		return errorf("mailboxes", "at least one mailbox is required")
	}
	mailboxes := map[string]int{}
	for i := range c.Mailboxes {
		m := &c.Mailboxes[i]
		p := item("mailboxes", i, m.Name)
		if err := checkName(p, "mailboxes", m.Name, mailboxes, i); err != nil {
			return err
		}
		if err := checkBareAddress(field(p, "address"), m.Address); err != nil {
			return err
		}
		if err := m.Endpoint.check(p); err != nil {
			return err
		}
		if err := m.Auth.check(field(p, "auth"), true); err != nil {
			return err
		}
		if _, err := verify.ParseAuthservIDs(m.AuthservID); err != nil {
			return errorf(field(p, "authserv_id"), "%v", err)
		}
		if m.LoginBackoffMax < time.Second {
			return errorf(field(p, "login_backoff_max"), "must be at least 1s, got %v", m.LoginBackoffMax)
		}
		for j, f := range m.Folders {
			if strings.TrimSpace(f) == "" || strings.EqualFold(f, "INBOX") || f == m.Junk {
				return errorf(fmt.Sprintf("%s.folders[%d]", p, j), "must name a folder besides INBOX and junk, got %q", f)
			}
		}
	}
	if c.Bounces != "" {
		if _, ok := mailboxes[c.Bounces]; !ok {
			return errorf("bounces", "unknown mailbox %q", c.Bounces)
		}
	}
	for i := range c.Senders {
		s := &c.Senders[i]
		if s.Bounces == "" {
			s.Bounces = c.Bounces
		} else if _, ok := mailboxes[s.Bounces]; !ok {
			return errorf(field(item("senders", i, s.Name), "bounces"), "unknown mailbox %q", s.Bounces)
		}
	}
	if len(c.Probes) == 0 {
		return errorf("probes", "at least one probe is required")
	}
	probes := map[string]int{}
	for i := range c.Probes {
		if err := c.checkProbe(i, senders, mailboxes, probes); err != nil {
			return err
		}
	}
	if err := c.Cleanup.check(); err != nil {
		return err
	}
	if err := c.Store.check(); err != nil {
		return err
	}
	if err := c.DNSChecks.Validate(); err != nil {
		return err
	}
	return nil
}

func checkName(path, list, name string, seen map[string]int, i int) error {
	switch {
	case name == "":
		return errorf(field(path, "name"), "required")
	case !validName.MatchString(name):
		return errorf(field(path, "name"), "must be 1-64 of a-z, 0-9, _ and -, got %q", name)
	}
	if j, dup := seen[name]; dup {
		return errorf(field(path, "name"), "duplicate; %s[%d] has the same name", list, j)
	}
	seen[name] = i
	return nil
}

func (e *Endpoint) check(path string) error {
	switch {
	case e.Host == "":
		return errorf(field(path, "host"), "required")
	case strings.ContainsAny(e.Host, " \t\r\n/:@") && net.ParseIP(e.Host) == nil:
		return errorf(field(path, "host"), "must be a host name or IP address without port or scheme, got %q", e.Host)
	case e.Port < 1 || e.Port > 65535:
		return errorf(field(path, "port"), "must be 1-65535, got %d", e.Port)
	}
	switch e.TLS {
	case TLSStartTLS, TLSImplicit:
	case TLSNone:
		if !e.Insecure {
			return errorf(field(path, "tls"), "none sends credentials in clear text; allow it with insecure: true")
		}
	default:
		return errorf(field(path, "tls"), "must be starttls, tls or none, got %q", e.TLS)
	}
	if e.CAFile != "" {
		if e.Insecure {
			return errorf(field(path, "ca_file"), "insecure: true skips verification, so ca_file would be ignored; set one of them")
		}
		roots, err := loadCAFile(e.CAFile)
		if err != nil {
			return errorf(field(path, "ca_file"), "%v", err)
		}
		e.roots = roots
	}
	return nil
}

// check verifies the mechanism has what it needs. Mailboxes must log in;
// a sender without a mechanism submits without AUTH (IP-allowlisted relay).
func (a *Auth) check(path string, required bool) error {
	hasToken := a.TokenFile != "" || a.TokenCommand.Set() || a.OAuth2 != nil
	switch a.Mechanism {
	case "":
		if required {
			return errorf(path, "required: set username and password (or password_file), or token_file/token_command for xoauth2")
		}
		return nil
	case AuthPlain, AuthLogin:
		switch {
		case a.Username == "":
			return errorf(field(path, "username"), "required for %s", a.Mechanism)
		case a.Password == "":
			return errorf(field(path, "password"), "required for %s: set password: ${VAR} or password_file", a.Mechanism)
		case hasToken:
			return errorf(path, "token_file/token_command/oauth2 are for xoauth2, not %s", a.Mechanism)
		}
	case AuthXOAUTH2:
		switch {
		case a.Username == "":
			return errorf(field(path, "username"), "required for xoauth2")
		case !hasToken:
			return errorf(path, "xoauth2 needs oauth2, token_file or token_command")
		case a.TokenCommand.Set() && a.TokenCommand.Program() == "":
			return errorf(field(path, "token_command"), "the program (its first element) is empty")
		case countSet(a.TokenFile != "", a.TokenCommand.Set(), a.OAuth2 != nil) > 1:
			return errorf(path, "set one of oauth2, token_file and token_command")
		case a.Password != "":
			return errorf(field(path, "password"), "not used by xoauth2; remove it")
		}
		if a.OAuth2 != nil {
			if err := a.OAuth2.check(field(path, "oauth2")); err != nil {
				return err
			}
		}
		if a.TokenFile != "" {
			// Tokens rotate, so only readability is checked here; the
			// content is read on every Secret call.
			f, err := os.Open(a.TokenFile)
			if err != nil {
				return errorf(field(path, "token_file"), "%v", err)
			}
			st, err := f.Stat()
			f.Close()
			if err == nil && st.IsDir() {
				return errorf(field(path, "token_file"), "%s is a directory", a.TokenFile)
			}
		}
	default:
		return errorf(field(path, "mechanism"), "must be plain, login or xoauth2, got %q", a.Mechanism)
	}
	return nil
}

func addrError(path, value string, err error) error {
	if value == "" {
		return errorf(path, "required")
	}
	return errorf(path, "invalid address %q: %s", value, strings.TrimPrefix(err.Error(), "mail: "))
}

// checkBareAddress wants local@domain with no display name: it goes on
// the SMTP envelope or is matched against delivered mail.
func checkBareAddress(path, value string) error {
	a, err := mail.ParseAddress(value)
	if err != nil {
		return addrError(path, value, err)
	}
	if a.Name != "" || a.Address != strings.TrimSpace(value) {
		return errorf(path, "want a bare address like user@example.com, got %q", value)
	}
	return nil
}

func (c *Config) checkProbe(i int, senders, mailboxes, probes map[string]int) error {
	pr := &c.Probes[i]
	p := item("probes", i, pr.Name)
	if err := checkName(p, "probes", pr.Name, probes, i); err != nil {
		return err
	}
	if pr.Schedule == "" {
		return errorf(field(p, "schedule"), "required, e.g. \"@every 1m\" or \"*/5 * * * *\"")
	}
	sched, err := CronParser.Parse(pr.Schedule)
	if err != nil {
		return errorf(field(p, "schedule"), "invalid cron spec %q: %v", pr.Schedule, err)
	}
	pr.schedule = sched
	if err := checkRefs(field(p, "senders"), "sender", pr.Senders, senders); err != nil {
		return err
	}
	if err := checkRefs(field(p, "mailboxes"), "mailbox", pr.Mailboxes, mailboxes); err != nil {
		return err
	}
	for j, name := range pr.Mailboxes {
		if m := c.Mailboxes[mailboxes[name]]; m.AuthservID == "" {
			return errorf(fmt.Sprintf("%s.mailboxes[%d]", p, j),
				"mailbox %q has no authserv_id, so no verdict could be trusted; set it (\"none\" for Microsoft)", name)
		}
	}
	switch {
	case pr.LatencySLO <= 0:
		return errorf(field(p, "latency_slo"), "must be positive, got %v", pr.LatencySLO)
	case pr.Deadline <= pr.LatencySLO:
		return errorf(field(p, "deadline"), "must be longer than latency_slo (%v), got %v", pr.LatencySLO, pr.Deadline)
	}
	if err := pr.parseTemplates(); err != nil {
		return prefixed(p, err)
	}
	subject, _, err := pr.Render(sample.Code, sample.Token)
	if err != nil {
		return prefixed(p, err)
	}
	if !strings.Contains(subject, sample.Token) {
		return errorf(field(p, "message.subject"), "must contain {{.Token}}: the watcher matches by it when a provider does not index X-Otpprobe-Id")
	}
	return nil
}

func checkRefs(path, kind string, names []string, known map[string]int) error {
	if len(names) == 0 {
		return errorf(path, "at least one %s is required", kind)
	}
	seen := map[string]bool{}
	for j, n := range names {
		p := fmt.Sprintf("%s[%d]", path, j)
		if _, ok := known[n]; !ok {
			return errorf(p, "unknown %s %q", kind, n)
		}
		if seen[n] {
			return errorf(p, "%s %q listed twice", kind, n)
		}
		seen[n] = true
	}
	return nil
}

func (s *Store) check() error {
	if err := s.Retention.check(); err != nil {
		return err
	}
	switch s.Driver {
	case "sqlite":
		if s.Path == "" {
			return errorf("store.path", "required for sqlite")
		}
		if s.DSN != "" {
			return errorf("store.dsn", "is for postgres; sqlite uses store.path")
		}
	case "postgres":
		if s.DSN == "" {
			return errorf("store.dsn", "required for postgres (e.g. dsn: ${OTPPROBE_PG_DSN})")
		}
	default:
		return errorf("store.driver", "must be sqlite or postgres, got %q", s.Driver)
	}
	return nil
}

// prefixed puts the probe's path in front of a template *Error's path.
func prefixed(path string, err error) error {
	if e, ok := err.(*Error); ok {
		return &Error{Path: field(path, e.Path), Msg: e.Msg}
	}
	return errorf(path, "%v", err)
}

func countSet(b ...bool) int {
	n := 0
	for _, x := range b {
		if x {
			n++
		}
	}
	return n
}

// checkGraph checks a Microsoft Graph sender: an app's client
// credentials, a sending user, an https Graph URL; no SMTP endpoint.
func (s *Sender) checkGraph(p string) error {
	a := &s.Auth
	switch {
	case a.OAuth2 == nil:
		return errorf(field(p, "auth.oauth2"), "required for type graph (Microsoft client credentials)")
	case a.OAuth2.Provider != OAuth2Microsoft:
		return errorf(field(p, "auth.oauth2.provider"), "type graph needs microsoft, got %q", a.OAuth2.Provider)
	case s.Host != "" || s.Port != 0 && s.Port != defaultSMTPPorts[s.TLS]:
		return errorf(field(p, "host"), "not used by type graph (set graph_url)")
	case !strings.HasPrefix(s.GraphURL, "https://"):
		return errorf(field(p, "graph_url"), "must be an https:// URL, got %q", s.GraphURL)
	case s.User == "" || strings.ContainsAny(s.User, " /?#"):
		return errorf(field(p, "user"), "must be the sending mailbox's address or object ID, got %q", s.User)
	}
	if err := a.OAuth2.check(field(p, "auth.oauth2")); err != nil {
		return err
	}
	if s.CAFile != "" {
		roots, err := loadCAFile(s.CAFile)
		if err != nil {
			return errorf(field(p, "ca_file"), "%v", err)
		}
		s.roots = roots
	}
	return nil
}
