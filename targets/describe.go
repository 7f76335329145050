package targets

import (
	"cmp"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/robfig/cron/v3"
)

// Sender returns the sender named name.
func (c *Config) Sender(name string) (*Sender, bool) {
	for i := range c.Senders {
		if c.Senders[i].Name == name {
			return &c.Senders[i], true
		}
	}
	return nil, false
}

// Mailbox returns the mailbox named name.
func (c *Config) Mailbox(name string) (*Mailbox, bool) {
	for i := range c.Mailboxes {
		if c.Mailboxes[i].Name == name {
			return &c.Mailboxes[i], true
		}
	}
	return nil, false
}

// CronSchedule returns the parsed Schedule (parsed at load; a Probe built
// in code is parsed with CronParser here).
func (p Probe) CronSchedule() (cron.Schedule, error) {
	if p.schedule != nil {
		return p.schedule, nil
	}
	return CronParser.Parse(p.Schedule)
}

// Domain is the domain of the From address, for Message-IDs.
func (s Sender) Domain() string {
	a, err := mail.ParseAddress(s.From)
	if err != nil {
		return ""
	}
	return a.Address[strings.LastIndexByte(a.Address, '@')+1:]
}

// CleanupEnabled reports whether seen canaries are removed (default true).
func (m Mailbox) CleanupEnabled() bool { return m.Cleanup == nil || *m.Cleanup }

// TrustsAuthservID reports whether an Authentication-Results header with
// authserv-id got is this mailbox's receiver's own (see MatchAuthservID).
func (m Mailbox) TrustsAuthservID(got string) bool { return MatchAuthservID(m.AuthservID, got) }

// Redacted returns a deep copy whose secret values are replaced by
// "[redacted]", safe to hand to anything that prints or serializes.
func (c *Config) Redacted() *Config {
	r := *c
	r.Senders = append([]Sender(nil), c.Senders...)
	r.Mailboxes = append([]Mailbox(nil), c.Mailboxes...)
	r.Probes = append([]Probe(nil), c.Probes...)
	for i := range r.Senders {
		r.Senders[i].Auth.redact()
	}
	for i := range r.Mailboxes {
		r.Mailboxes[i].Auth.redact()
	}
	r.Store.DSN = Secret(r.Store.DSN.String())
	return &r
}

// redact replaces the password, and a token_command's arguments (they may
// carry a client secret), by "[redacted]".
func (a *Auth) redact() {
	a.Password = Secret(a.Password.String())
	if len(a.TokenCommand) > 1 {
		a.TokenCommand = Command{a.TokenCommand.Program(), "[redacted]"}
	}
}

// Describe writes the human summary `otpprobe validate` prints. It shows
// where each secret comes from, never its value; a token_command is shown
// by its program only, since its arguments may carry a client secret.
func (c *Config) Describe(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "agent %s\n\nSENDER\tENDPOINT\tTLS\tAUTH\tFROM\tENVELOPE FROM\tBOUNCES\n", c.Agent)
	for _, s := range c.Senders {
		bounces := s.Bounces
		if bounces == "" {
			bounces = "(not watched)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, hostPort(s.Endpoint), tlsDesc(s.Endpoint),
			s.Auth.describe(), s.From, s.EnvelopeFrom, bounces)
	}
	fmt.Fprintf(tw, "\nMAILBOX\tPROVIDER\tENDPOINT\tTLS\tAUTH\tADDRESS\tAUTHSERV-ID\tJUNK\tCLEANUP\n")
	for _, m := range c.Mailboxes {
		junk := m.Junk
		if junk == "" {
			junk = "(\\Junk)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%v\n", m.Name, m.Provider, hostPort(m.Endpoint),
			tlsDesc(m.Endpoint), m.Auth.describe(), m.Address, m.AuthservID, junk, m.CleanupEnabled())
	}
	fmt.Fprintf(tw, "\nPROBE\tSCHEDULE\tNEXT RUN (UTC)\tPAIRS\tLATENCY SLO\tDEADLINE\n")
	for _, p := range c.Probes {
		next := "-"
		if s, err := p.CronSchedule(); err == nil {
			next = s.Next(time.Now().UTC()).UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d (%s × %s)\t%v\t%v\n", p.Name, p.Schedule, next,
			len(p.Senders)*len(p.Mailboxes), strings.Join(p.Senders, ","), strings.Join(p.Mailboxes, ","),
			p.LatencySLO, p.Deadline)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	store := c.Store.Driver + " " + c.Store.Path
	if c.Store.Driver == "postgres" {
		store = "postgres (dsn " + c.Store.DSN.String() + ")"
	}
	if _, err := fmt.Fprintf(w, "\nstore   %s\nhttp    %s\n", store, c.HTTP.Listen); err != nil {
		return err
	}
	return c.describeReporting(w)
}

// describeReporting lists routes, SLOs, alert receivers and DNS checks. A
// webhook's secret is named by where it comes from, never shown.
func (c *Config) describeReporting(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(c.Routes) > 0 {
		fmt.Fprintf(tw, "\nROUTE\tPRIMARY\tBACKUPS\tFAIL OVER AFTER\tFAIL BACK AFTER\tNOTIFY\n")
		for _, r := range c.Routes {
			bad := fmt.Sprintf("%d rounds with ≥ %d providers failing", r.UnhealthyRounds, r.UnhealthyProviders)
			if c.Store.Driver == "postgres" { // agents share the store: rounds are counted by interval, with a quorum
				q := "a majority of agents"
				if r.Quorum > 0 {
					q = fmt.Sprintf("%d agents", r.Quorum)
				}
				bad = fmt.Sprintf("%d intervals with ≥ %d providers failing for %s", r.UnhealthyRounds, r.UnhealthyProviders, q)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d healthy rounds, ≥ %v\t%s\n", r.Name, r.Primary,
				strings.Join(r.Backups, ","), bad, r.HealthyRounds, r.MinHold, strings.Join(r.Webhooks, ","))
		}
	}
	if len(c.SLOs) > 0 {
		fmt.Fprintf(tw, "\nSLO\tOF\tOBJECTIVE\n")
		for _, o := range c.SLOs {
			of := "route " + o.Route
			if o.Route == "" {
				of = strings.TrimSuffix("sender "+o.Sender+" provider "+o.Provider, " provider ")
			}
			fmt.Fprintf(tw, "%s\t%s\t%g%% in the inbox within %v over %v\n", o.Name, of, o.Objective, o.Latency, o.Window)
		}
	}
	if len(c.Alerts.Webhooks)+len(c.Alerts.Alertmanagers) > 0 {
		fmt.Fprintf(tw, "\nALERT RECEIVER\tKIND\tURL\tSECRET\n")
		for _, h := range c.Alerts.Webhooks {
			secret := "(none)"
			switch {
			case h.SecretFile != "":
				secret = "file " + h.SecretFile
			case h.SecretEnv != "":
				secret = "env " + h.SecretEnv
			}
			fmt.Fprintf(tw, "%s\twebhook\t%s\t%s\n", h.Name, h.URL, secret)
		}
		for _, a := range c.Alerts.Alertmanagers {
			fmt.Fprintf(tw, "%s\talertmanager\t%s\t-\n", a.Name, a.URL)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	dns := "dns checks " + cmp.Or(c.DNSChecks.Schedule, DefaultDNSSchedule)
	if c.DNSChecks.Disabled {
		dns = "dns checks disabled"
	}
	_, err := fmt.Fprintf(w, "\n%s\n", dns)
	return err
}

func hostPort(e Endpoint) string { return fmt.Sprintf("%s:%d", e.Host, e.Port) }

func tlsDesc(e Endpoint) string {
	switch {
	case e.Insecure:
		return e.TLS + " (INSECURE)"
	case e.CAFile != "":
		return e.TLS + " (ca " + e.CAFile + ")"
	}
	return e.TLS
}

func (a Auth) describe() string {
	switch a.Mechanism {
	case "":
		return "none"
	case AuthXOAUTH2:
		switch {
		case a.OAuth2 != nil:
			return fmt.Sprintf("xoauth2 %s, oauth2 %s", a.Username, a.OAuth2.describe())
		case a.TokenFile != "":
			return fmt.Sprintf("xoauth2 %s, token file %s", a.Username, a.TokenFile)
		}
		return fmt.Sprintf("xoauth2 %s, token command %s …", a.Username, a.TokenCommand.Program())
	}
	from := "from " + a.passwordIn
	switch a.passwordIn {
	case passwordFromInline:
		from = "inline"
	case "":
		from = "set"
	}
	return fmt.Sprintf("%s %s, password %s", a.Mechanism, a.Username, from)
}
