package targets

import (
	"net/mail"
	"os"
	"strings"
	"time"
)

// Defaults applied at load when a field is left out.
const (
	DefaultDeadline   = 10 * time.Minute
	DefaultLatencySLO = 60 * time.Second
	// DefaultLoginBackoffMax caps the wait between IMAP logins the server
	// refused (Mailbox.LoginBackoffMax).
	DefaultLoginBackoffMax = 30 * time.Minute
	DefaultSubject         = "Your verification code is {{.Code}} [{{.Token}}]"
	DefaultBody            = "Your verification code is {{.Code}}.\n\n" +
		"It expires in 10 minutes. If you did not request it, you can ignore this message.\n\n" +
		"Reference: {{.Token}}\n"
	DefaultStoreDriver = "sqlite"
	// DefaultStorePath is relative to the working directory, not to the
	// config file: data lives where the daemon runs.
	DefaultStorePath  = "./data/otpprobe.db"
	DefaultHTTPListen = "127.0.0.1:8080"
)

// Default ports by TLS mode when neither the config nor a preset sets one.
var (
	defaultSMTPPorts = map[string]int{TLSStartTLS: 587, TLSImplicit: 465, TLSNone: 25}
	defaultIMAPPorts = map[string]int{TLSStartTLS: 143, TLSImplicit: 993, TLSNone: 143}
)

func (c *Config) applyDefaults() {
	host, _ := os.Hostname()
	fill(&c.Agent, host)
	for i := range c.Senders {
		s := &c.Senders[i]
		fill(&s.TLS, TLSStartTLS)
		fillInt(&s.Port, defaultSMTPPorts[s.TLS])
		if a, err := mail.ParseAddress(s.From); err == nil {
			fill(&s.EnvelopeFrom, a.Address)
		}
		fill(&s.Helo, DefaultHelo(host, s.From))
		fill(&s.Type, SenderSMTP)
		if s.Type == SenderGraph {
			fill(&s.GraphURL, DefaultGraphURL)
			if a, err := mail.ParseAddress(s.From); err == nil {
				fill(&s.User, a.Address)
			}
		}
		s.Auth.inferMechanism()
		if s.Auth.OAuth2 != nil {
			s.Auth.OAuth2.applyDefaults()
		}
	}
	for i := range c.Mailboxes {
		m := &c.Mailboxes[i]
		fill(&m.TLS, TLSImplicit)
		fillInt(&m.Port, defaultIMAPPorts[m.TLS])
		if m.Cleanup == nil {
			on := true
			m.Cleanup = &on
		}
		m.Auth.inferMechanism()
		if m.Auth.OAuth2 != nil {
			m.Auth.OAuth2.applyDefaults()
		}
		if m.LoginBackoffMax == 0 {
			m.LoginBackoffMax = DefaultLoginBackoffMax
		}
	}
	for i := range c.Probes {
		p := &c.Probes[i]
		if p.Deadline == 0 {
			p.Deadline = DefaultDeadline
		}
		if p.LatencySLO == 0 {
			p.LatencySLO = DefaultLatencySLO
		}
		fill(&p.Message.Subject, DefaultSubject)
		fill(&p.Message.Body, DefaultBody)
	}
	c.Store.Retention.fillDefaults()
	fill(&c.Cleanup.PurgeAfter, DefaultPurgeAfter)
	fill(&c.Store.Driver, DefaultStoreDriver)
	if c.Store.Driver == DefaultStoreDriver {
		fill(&c.Store.Path, DefaultStorePath)
	}
	fill(&c.HTTP.Listen, DefaultHTTPListen)
}

// DefaultHelo is the EHLO name a sender uses when none is configured: the
// machine's host name when it is a fully qualified domain name, else the
// domain of from (which may carry a display name). Receivers score a bare
// "localhost" or a single-label name as a spam sign.
func DefaultHelo(hostname, from string) string {
	h := strings.TrimSuffix(strings.ToLower(hostname), ".")
	if strings.Contains(h, ".") && !strings.HasPrefix(h, "localhost") && !strings.ContainsAny(h, " \t\r\n") {
		return h
	}
	if a, err := mail.ParseAddress(from); err == nil {
		if at := strings.LastIndexByte(a.Address, '@'); at >= 0 && at < len(a.Address)-1 {
			return strings.ToLower(a.Address[at+1:])
		}
	}
	if h != "" {
		return h
	}
	return "localhost"
}

// inferMechanism picks xoauth2 when a token source is set and plain when
// a user or password is; with nothing set a sender does not AUTH at all.
func (a *Auth) inferMechanism() {
	switch {
	case a.Mechanism != "":
	case a.TokenFile != "" || a.TokenCommand.Set() || a.OAuth2 != nil:
		a.Mechanism = AuthXOAUTH2
	case a.Username != "" || a.Password != "":
		a.Mechanism = AuthPlain
	}
}
