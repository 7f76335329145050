package sender

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"time"
)

// Resolver is what the relay needs from DNS. verify/resolver.Resolver and
// *net.Resolver both satisfy it. Errors should be *net.DNSError so that
// "no such record" (IsNotFound) and "try again" (IsTemporary) can be told
// apart.
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// DKIMConfig is the key the service signs outgoing mail with.
type DKIMConfig struct {
	Domain   string // d=
	Selector string // s=
	Signer   crypto.Signer
}

// Style selects how the service words its replies and bounces.
type Style int

const (
	// StyleRelay answers like a Postfix relay: "250 2.0.0 Ok: queued as ID".
	StyleRelay Style = iota
	// StyleM365 answers like Exchange Online: "250 2.6.0 <msgid>
	// [InternalId=N, Hostname=H] ... Queued mail for delivery".
	StyleM365
)

// Config describes one sending service.
type Config struct {
	Name       string // "m365", "backup": log attribute and DSN wording
	ListenAddr string // submission listener, e.g. "127.0.0.11:0"
	SourceIP   string // relay connections are made from this address
	Hostname   string // EHLO name, Received "by" name, Reporting-MTA
	Style      Style

	TLS     *tls.Config    // submission STARTTLS certificate
	RootCAs *x509.CertPool // verifies the MX hosts' certificates

	Username string
	Password string // secret: never logged nor put in errors
	// VerifyToken, when set, offers AUTH XOAUTH2: it checks the bearer
	// token of user (the lab identity platform's Verify) and returns an
	// *identity.VerifyError when the token is refused.
	VerifyToken func(user, token string) error

	// AllowedFromDomain is the only domain accepted in MAIL FROM and the
	// From header (Exchange Online's SendAs check).
	AllowedFromDomain string

	DKIM DKIMConfig

	Resolver Resolver
	MXPort   int // the world's shared "port 25"

	RetryInterval   time.Duration // first retry delay; doubles up to 16x. Default 1s.
	RetryExpiry     time.Duration // give up and bounce after this. Default 2m.
	MaxMessageBytes int64         // submission size limit. Default 10 MiB.
	Workers         int           // concurrent relay deliveries. Default 4.

	// AttemptTimeout bounds one delivery attempt (all MX hosts). Default 60s.
	AttemptTimeout time.Duration

	// LossSource drives Faults.LossRate; tests inject a seeded source to
	// make losses reproducible. Default: a randomly seeded PCG.
	LossSource rand.Source

	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.RetryInterval <= 0 {
		c.RetryInterval = time.Second
	}
	if c.RetryExpiry <= 0 {
		c.RetryExpiry = 2 * time.Minute
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 10 << 20
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = 60 * time.Second
	}
	if c.LossSource == nil {
		c.LossSource = rand.NewPCG(rand.Uint64(), rand.Uint64())
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// validate returns a one-line error naming the first bad field.
func (c *Config) validate() error {
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"Name", c.Name}, {"ListenAddr", c.ListenAddr}, {"SourceIP", c.SourceIP},
		{"Hostname", c.Hostname}, {"Username", c.Username}, {"Password", c.Password},
		{"AllowedFromDomain", c.AllowedFromDomain}, {"DKIM.Domain", c.DKIM.Domain},
		{"DKIM.Selector", c.DKIM.Selector},
	} {
		if strings.TrimSpace(f.v) == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("sender config: missing %s", strings.Join(missing, ", "))
	}
	if net.ParseIP(c.SourceIP) == nil {
		return fmt.Errorf("sender config: SourceIP %q is not an IP address", c.SourceIP)
	}
	if c.TLS == nil || (len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil) {
		return errors.New("sender config: TLS needs a certificate (submission requires STARTTLS)")
	}
	if c.RootCAs == nil {
		return errors.New("sender config: RootCAs missing (relay TLS is always verified)")
	}
	if c.DKIM.Signer == nil {
		return errors.New("sender config: DKIM.Signer missing")
	}
	if _, err := DKIMRecord(c.DKIM.Signer.Public()); err != nil {
		return fmt.Errorf("sender config: DKIM.Signer: %w", err)
	}
	if c.Resolver == nil {
		return errors.New("sender config: Resolver missing")
	}
	if c.MXPort <= 0 || c.MXPort > 65535 {
		return fmt.Errorf("sender config: MXPort %d out of range 1-65535", c.MXPort)
	}
	if c.RetryExpiry < c.RetryInterval {
		return fmt.Errorf("sender config: RetryExpiry %s shorter than RetryInterval %s", c.RetryExpiry, c.RetryInterval)
	}
	return nil
}
