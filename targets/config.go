// Package targets is WHAT otpprobe probes: the configuration model (senders,
// mailboxes, probes, store, http), YAML loading with known-fields checking,
// provider presets, defaults, validation and secret references.
//
// Secrets come from ${ENV_VAR} references, expanded at load only in
// agent, auth.username, auth.password and store.dsn (anywhere else "${"
// is an error rather than a silently literal value), or from files:
// password_file, token_file and ca_file are relative to the config file's
// directory. Errors are *Error: one line naming the field, never a secret.
package targets

import (
	"crypto/x509"
	"slices"
	"text/template"
	"time"

	"github.com/robfig/cron/v3"
)

// Config is the whole configuration file.
type Config struct {
	Agent     string    `yaml:"agent"` // this instance's name; a label on every metric
	Senders   []Sender  `yaml:"senders"`
	Mailboxes []Mailbox `yaml:"mailboxes"`
	Probes    []Probe   `yaml:"probes"`
	// Bounces names the mailbox (from Mailboxes) that receives DSNs for
	// senders that name none of their own (Sender.Bounces); empty when
	// their bounces are not watched.
	Bounces string `yaml:"bounces"`
	Store   Store  `yaml:"store"`
	// Cleanup: how long canaries may stay in a seed mailbox's Trash.
	Cleanup Cleanup `yaml:"cleanup"`
	HTTP    HTTP    `yaml:"http"`
	// Routes, SLOs and Alerts are what the results drive: failover between
	// senders, delivery objectives and notifications (routes.go, slos.go,
	// alerts.go).
	Routes []Route `yaml:"routes"`
	SLOs   []SLO   `yaml:"slos"`
	Alerts Alerts  `yaml:"alerts"`
	// DNSChecks schedules the DNS posture checks (dnschecks.go).
	DNSChecks DNSChecks `yaml:"dns_checks"`
}

// TLS modes for Sender.TLS and Mailbox.TLS.
const (
	TLSStartTLS = "starttls"
	TLSImplicit = "tls"
	TLSNone     = "none" // only with Insecure: true
)

// Auth mechanisms.
const (
	AuthPlain   = "plain"
	AuthLogin   = "login"
	AuthXOAUTH2 = "xoauth2"
)

// Endpoint is how to reach and trust a server.
type Endpoint struct {
	Host     string `yaml:"host"`
	Port     int    `yaml:"port"`
	TLS      string `yaml:"tls"`      // starttls | tls | none
	Insecure bool   `yaml:"insecure"` // skip certificate verification; required for tls: none
	CAFile   string `yaml:"ca_file"`  // PEM bundle of private CAs, added to nothing else

	roots *x509.CertPool // parsed CAFile, cached at load
}

// Auth holds credentials. Passwords are resolved at load from ${ENV}
// references or password_file (read again at each login by Secret) and
// must never be printed; tokens are read
// on every use (Auth.Secret) because they expire. For IMAP, plain and
// login both mean user + password. A sender without a mechanism (and
// without credentials) submits without AUTH. After Load, *_file paths
// are absolute.
//
// token_command is an argv list run without a shell in the config's
// directory (Command). Keep secrets out of its arguments: Describe and
// the redacted config show only the program.
type Auth struct {
	Mechanism    string  `yaml:"mechanism"` // plain | login | xoauth2
	Username     string  `yaml:"username"`
	Password     Secret  `yaml:"password"`
	PasswordFile string  `yaml:"password_file"`
	TokenFile    string  `yaml:"token_file"`    // xoauth2: a file holding an access token
	TokenCommand Command `yaml:"token_command"` // xoauth2: a command printing an access token
	OAuth2       *OAuth2 `yaml:"oauth2"`        // xoauth2 (and graph): a token source otpprobe runs itself

	path       string // field path for errors, e.g. "senders[0] (m365).auth"
	dir        string // config directory: token_command runs there
	passwordIn string // where Password came from: "inline", "$VAR" or a file path
}

// Sender kinds for Sender.Type.
const (
	SenderSMTP  = "smtp"  // SMTP submission (the default)
	SenderGraph = "graph" // Microsoft Graph sendMail with the MIME message
)

// DefaultGraphURL is the Graph endpoint of Microsoft's global cloud.
const DefaultGraphURL = "https://graph.microsoft.com"

// Sender is a path that OTP mail leaves through (an M365 tenant, a backup relay).
type Sender struct {
	Name         string `yaml:"name"`
	Type         string `yaml:"type"`      // smtp (default) | graph
	User         string `yaml:"user"`      // graph: the mailbox that sends (UPN or object ID); default: the From address
	GraphURL     string `yaml:"graph_url"` // graph: default https://graph.microsoft.com (national clouds, the lab)
	Preset       string `yaml:"preset"`    // m365
	Endpoint     `yaml:",inline"`
	Auth         Auth   `yaml:"auth"`
	From         string `yaml:"from"`          // header From
	EnvelopeFrom string `yaml:"envelope_from"` // MAIL FROM; defaults to From
	Helo         string `yaml:"helo"`          // EHLO name, before and after STARTTLS; default: the FQDN host name, else the From domain
	// Bounces names the mailbox that receives this sender's DSNs (its
	// envelope sender's); default the top-level bounces. Senders may share one.
	Bounces string `yaml:"bounces"`
}

// Mailbox is a seed mailbox at a provider, watched over IMAP.
type Mailbox struct {
	Name     string `yaml:"name"`
	Provider string `yaml:"provider"` // gmail | yahoo | outlook | generic; fills defaults
	Address  string `yaml:"address"`
	Endpoint `yaml:",inline"`
	Auth     Auth `yaml:"auth"`
	// AuthservID lists the authserv-ids whose Authentication-Results are
	// trusted (RFC 8601 §5; verify.ParseAuthservIDs): hosts, "*.example.com"
	// wildcards, "none" for Microsoft, which writes none.
	AuthservID string   `yaml:"authserv_id"`
	Junk       string   `yaml:"junk"`    // junk folder; default: \Junk special-use, then names
	Trash      string   `yaml:"trash"`   // cleanup target when moving; default: \Trash special-use
	Cleanup    *bool    `yaml:"cleanup"` // default true: canaries are removed once seen
	Folders    []string `yaml:"folders"` // extra folders to watch besides INBOX and junk
	// LoginBackoffMax caps the wait between logins the server refused
	// (the wait starts at a minute and doubles; default 30m): retrying a
	// refused password every few seconds is how accounts get locked.
	LoginBackoffMax time.Duration `yaml:"login_backoff_max"`
}

// Probe sends through every sender to every mailbox on a schedule.
type Probe struct {
	Name       string        `yaml:"name"`
	Schedule   string        `yaml:"schedule"` // cron spec, seconds allowed, or @every 1m
	Senders    []string      `yaml:"senders"`
	Mailboxes  []string      `yaml:"mailboxes"`
	Deadline   time.Duration `yaml:"deadline"`    // lost after; default 10m
	LatencySLO time.Duration `yaml:"latency_slo"` // late after; default 60s
	Message    Message       `yaml:"message"`

	schedule cron.Schedule      // parsed Schedule
	subject  *template.Template // parsed Message.Subject
	body     *template.Template // parsed Message.Body
}

// Message is the canary's template: text/template with {{.Code}} (the
// 6-digit code) and {{.Token}} (the attempt's token, required in Subject).
type Message struct {
	Subject string `yaml:"subject"`
	Body    string `yaml:"body"`
}

// Store selects the attempt history backend.
type Store struct {
	Driver string `yaml:"driver"` // sqlite (default) | postgres
	Path   string `yaml:"path"`   // sqlite file; default ./data/otpprobe.db, relative to the working directory
	DSN    Secret `yaml:"dsn"`    // postgres URL
	// Retention bounds the history kept (retention.go).
	Retention Retention `yaml:"retention"`
}

// HTTP is the metrics and API listener (http.go).
type HTTP struct {
	Listen string `yaml:"listen"` // default 127.0.0.1:8080
	// Tokens, when set, are required by every /api/v1/* request and the
	// dashboard: a read token for GET, an admin token for anything else.
	Tokens []APIToken `yaml:"tokens"`
	// MetricsAuth is "open" (default: /metrics, /healthz and /readyz need
	// no token) or "read" (they take a read or admin token too).
	MetricsAuth string `yaml:"metrics_auth"`
	// AllowUnauthenticated lets run listen on a non-loopback address
	// without tokens: the API's pin would then be open to anyone reaching
	// the port.
	AllowUnauthenticated bool `yaml:"allow_unauthenticated"`
	// TLS serves HTTPS; renewed certificate files are picked up without a
	// restart.
	TLS *ListenerTLS `yaml:"tls"`
}

// Secret is a string that never prints. String/GoString/MarshalYAML/
// MarshalJSON all redact; Reveal returns the value.
type Secret string

const redacted = "[redacted]"

func (s Secret) Reveal() string { return string(s) }
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}
func (s Secret) GoString() string             { return s.String() }
func (s Secret) MarshalYAML() (any, error)    { return s.String(), nil }
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// BounceMailboxes are the mailboxes any sender's DSNs go to, in the order
// senders name them, each once.
func (c *Config) BounceMailboxes() []string {
	var out []string
	for _, s := range c.Senders {
		if s.Bounces != "" && !slices.Contains(out, s.Bounces) {
			out = append(out, s.Bounces)
		}
	}
	return out
}
