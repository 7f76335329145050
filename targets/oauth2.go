package targets

import (
	"fmt"
	"os"
	"strings"
)

// OAuth2 providers for Auth.OAuth2.Provider.
const (
	OAuth2Microsoft = "microsoft" // Entra ID: Microsoft 365 tenants and Outlook.com accounts
	OAuth2Google    = "google"
)

// OAuth2 flows for Auth.OAuth2.Flow.
const (
	FlowClientCredentials = "client_credentials" // an app's own identity (secret or certificate); Microsoft only
	FlowRefreshToken      = "refresh_token"      // a user's refresh token, obtained once by `otpprobe auth login`
)

// Default endpoints and scopes. Microsoft's app-only scopes are
// "<resource>/.default"; delegated ones name the permissions.
const (
	DefaultMicrosoftAuthority = "https://login.microsoftonline.com"
	ScopeOutlookApp           = "https://outlook.office365.com/.default"
	ScopeGraphApp             = "https://graph.microsoft.com/.default"
	ScopeGoogleMail           = "https://mail.google.com/"
)

// scopesOutlookUser is what a Microsoft refresh token is asked for: IMAP,
// SMTP submission and a new refresh token.
var scopesOutlookUser = []string{"https://outlook.office.com/IMAP.AccessAsUser.All", "https://outlook.office.com/SMTP.Send", "offline_access"}

// OAuth2 is a token source: otpprobe obtains access tokens itself, keeps
// them in memory, refreshes them before they expire, and shares one source
// between the SMTP and IMAP paths of the same account. Secrets come from
// ${ENV} (client_secret) or files (client_secret_file, certificate_file,
// refresh_token_file; relative to the config file). A rotated refresh
// token is written back to refresh_token_file (0600, atomically).
type OAuth2 struct {
	Provider         string   `yaml:"provider"` // microsoft | google
	Flow             string   `yaml:"flow"`     // client_credentials | refresh_token; default by what is set
	Tenant           string   `yaml:"tenant"`   // Microsoft: tenant ID or domain (consumers for Outlook.com)
	ClientID         string   `yaml:"client_id"`
	ClientSecret     Secret   `yaml:"client_secret"`
	ClientSecretFile string   `yaml:"client_secret_file"`
	CertificateFile  string   `yaml:"certificate_file"` // PEM: certificate and its private key
	RefreshTokenFile string   `yaml:"refresh_token_file"`
	Scopes           []string `yaml:"scopes"`    // default: by provider, flow and sender type
	Authority        string   `yaml:"authority"` // Microsoft: default https://login.microsoftonline.com (national clouds differ)
	TokenURL         string   `yaml:"token_url"` // Google: override of the token endpoint
	CAFile           string   `yaml:"ca_file"`   // PEM CAs for the token endpoint, added to nothing else
}

// ScopesFor returns the scopes to ask for: the configured ones, else the
// provider's for mail over SMTP/IMAP or, with graph, for Graph sendMail.
func (o *OAuth2) ScopesFor(graph bool) []string {
	if len(o.Scopes) > 0 {
		return o.Scopes
	}
	switch {
	case o.Provider == OAuth2Google:
		return []string{ScopeGoogleMail}
	case graph && o.Flow == FlowClientCredentials:
		return []string{ScopeGraphApp}
	case graph:
		return []string{"https://graph.microsoft.com/Mail.Send", "offline_access"}
	case o.Flow == FlowClientCredentials:
		return []string{ScopeOutlookApp}
	}
	return scopesOutlookUser
}

// AuthorityURL is the Microsoft authority, e.g.
// https://login.microsoftonline.com/<tenant>.
func (o *OAuth2) AuthorityURL() string {
	return strings.TrimSuffix(o.Authority, "/") + "/" + o.Tenant
}

func (o *OAuth2) applyDefaults() {
	if o.Provider == OAuth2Microsoft {
		fill(&o.Authority, DefaultMicrosoftAuthority)
	}
	if o.Flow == "" {
		if o.RefreshTokenFile != "" {
			o.Flow = FlowRefreshToken
		} else {
			o.Flow = FlowClientCredentials
		}
	}
}

func (o *OAuth2) resolve(path, dir string) error {
	secret, err := expand(field(path, "client_secret"), o.ClientSecret.Reveal())
	if err != nil {
		return err
	}
	o.ClientSecret = Secret(secret)
	for _, f := range []struct {
		name string
		p    *string
	}{{"client_secret_file", &o.ClientSecretFile}, {"certificate_file", &o.CertificateFile}, {"refresh_token_file", &o.RefreshTokenFile}, {"ca_file", &o.CAFile}} {
		if *f.p, err = resolvePath(dir, *f.p); err != nil {
			return errorf(field(path, f.name), "%v", err)
		}
	}
	if o.ClientSecretFile != "" {
		if o.ClientSecret != "" {
			return errorf(field(path, "client_secret_file"), "set either client_secret or client_secret_file, not both")
		}
		s, err := readSecretFile(o.ClientSecretFile)
		if err != nil {
			return errorf(field(path, "client_secret_file"), "%v", err)
		}
		o.ClientSecret = Secret(s)
	}
	return nil
}

func (o *OAuth2) check(path string) error {
	switch o.Provider {
	case OAuth2Microsoft, OAuth2Google:
	case "":
		return errorf(field(path, "provider"), "required: microsoft or google")
	default:
		return errorf(field(path, "provider"), "must be microsoft or google, got %q", o.Provider)
	}
	if o.ClientID == "" {
		return errorf(field(path, "client_id"), "required")
	}
	if o.Provider == OAuth2Microsoft && o.Tenant == "" {
		return errorf(field(path, "tenant"), "required for microsoft (a tenant ID or domain; consumers for Outlook.com accounts)")
	}
	if o.Authority != "" && !strings.HasPrefix(o.Authority, "https://") {
		return errorf(field(path, "authority"), "must be an https:// URL, got %q", o.Authority)
	}
	switch o.Flow {
	case FlowClientCredentials:
		switch {
		case o.Provider != OAuth2Microsoft:
			return errorf(field(path, "flow"), "client_credentials is for microsoft; google mailboxes use refresh_token")
		case o.ClientSecret == "" && o.CertificateFile == "":
			return errorf(path, "client_credentials needs client_secret, client_secret_file or certificate_file")
		case o.ClientSecret != "" && o.CertificateFile != "":
			return errorf(path, "set either a client secret or certificate_file, not both")
		case o.RefreshTokenFile != "":
			return errorf(field(path, "refresh_token_file"), "not used by client_credentials; remove it")
		}
	case FlowRefreshToken:
		if o.RefreshTokenFile == "" {
			return errorf(field(path, "refresh_token_file"), "required for refresh_token (otpprobe auth login writes it)")
		}
		if o.CertificateFile != "" {
			return errorf(field(path, "certificate_file"), "not used by refresh_token; remove it")
		}
	default:
		return errorf(field(path, "flow"), "must be client_credentials or refresh_token, got %q", o.Flow)
	}
	if o.CertificateFile != "" {
		if _, err := readFile(o.CertificateFile, maxSecretFileSize); err != nil {
			return errorf(field(path, "certificate_file"), "%v", err)
		}
	}
	if o.CAFile != "" {
		if _, err := loadCAFile(o.CAFile); err != nil {
			return errorf(field(path, "ca_file"), "%v", err)
		}
	}
	return nil
}

// RefreshTokenPresent reports whether the refresh token file exists yet
// (validate accepts a config before `otpprobe auth login` has run).
func (o *OAuth2) RefreshTokenPresent() bool {
	st, err := os.Stat(o.RefreshTokenFile)
	return err == nil && st.Size() > 0
}

// Warnings are problems that do not stop a config from loading but will
// stop it from working: today, password logins to Microsoft, which
// disables SMTP AUTH with Basic authentication for Exchange Online by
// default at the end of December 2026 and takes only OAuth2 for
// Outlook.com IMAP.
func (c *Config) Warnings() []string {
	var out []string
	for i, s := range c.Senders {
		if s.Preset == PresetM365 && (s.Auth.Mechanism == AuthPlain || s.Auth.Mechanism == AuthLogin) {
			out = append(out, field(item("senders", i, s.Name), "auth")+": the m365 preset logs in with a password (SMTP AUTH Basic), "+
				"which Exchange Online disables by default at the end of December 2026 (535 5.7.139); use auth.oauth2 (XOAUTH2) or type: graph")
		}
	}
	for i, m := range c.Mailboxes {
		if m.Provider == ProviderOutlook && (m.Auth.Mechanism == AuthPlain || m.Auth.Mechanism == AuthLogin) {
			out = append(out, field(item("mailboxes", i, m.Name), "auth")+": Outlook IMAP takes OAuth2 only; "+
				"a password login will be refused: use auth.oauth2 (otpprobe auth login writes the refresh token)")
		}
	}
	return out
}

// describe says which flow and where its secret comes from, never the
// secret: what validate prints.
func (o *OAuth2) describe() string {
	switch {
	case o.RefreshTokenFile != "":
		return fmt.Sprintf("%s refresh token from %s", o.Provider, o.RefreshTokenFile)
	case o.CertificateFile != "":
		return fmt.Sprintf("%s client %s, certificate %s", o.Provider, o.ClientID, o.CertificateFile)
	case o.ClientSecretFile != "":
		return fmt.Sprintf("%s client %s, secret from %s", o.Provider, o.ClientID, o.ClientSecretFile)
	}
	return fmt.Sprintf("%s client %s, secret set", o.Provider, o.ClientID)
}
