package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/otpprobe/otpprobe/targets"
)

// Credentials returns the username and secret for a mailbox at the moment
// of use, so rotated passwords and refreshed OAuth2 tokens are picked up on
// every reconnect. The secret is a password, or an access token when the
// mailbox's mechanism is xoauth2.
type Credentials func(ctx context.Context) (username, secret string, err error)

// IMAP stages named in IMAPError.
const (
	StageConfig  = "config" // the mailbox's settings cannot work; retrying will not help
	StageDial    = "dial"
	StageTLS     = "tls"
	StageLogin   = "login"
	StageList    = "list"
	StageSelect  = "select"
	StageSearch  = "search"
	StageFetch   = "fetch"
	StageIdle    = "idle"
	StageCleanup = "cleanup"
)

// IMAPError is a failure of one stage of an IMAP session. It never carries
// credentials: auth failures keep only the server's status text.
type IMAPError struct {
	Stage   string // config, dial, tls, login, list, select, search, fetch, idle, cleanup
	Mailbox string // configured mailbox name
	Err     error
}

func (e *IMAPError) Error() string {
	return fmt.Sprintf("imap %s %s: %v", e.Mailbox, e.Stage, e.Err)
}

func (e *IMAPError) Unwrap() error { return e.Err }

// Temporary reports whether retrying may help. Refused credentials, a
// certificate that does not verify and a missing folder are permanent until
// someone changes the config or the server; everything else is treated as
// a network blip.
func (e *IMAPError) Temporary() bool {
	switch e.Stage {
	case StageConfig:
		return false
	case StageTLS:
		var certErr *tls.CertificateVerificationError
		var unknown x509.UnknownAuthorityError
		var hostErr x509.HostnameError
		return !errors.As(e.Err, &certErr) && !errors.As(e.Err, &unknown) && !errors.As(e.Err, &hostErr)
	case StageLogin:
		var ie *imap.Error
		return !errors.As(e.Err, &ie)
	case StageSelect:
		var ie *imap.Error
		return !errors.As(e.Err, &ie)
	}
	return !errors.Is(e.Err, ErrNoFolder)
}

// dialIMAP connects, secures and authenticates one IMAP connection. The
// returned client is closed when ctx is done before dialIMAP returns;
// afterwards the caller owns it. Debug output is never enabled: it would
// carry the credentials.
func dialIMAP(ctx context.Context, mb targets.Mailbox, creds Credentials, handler *imapclient.UnilateralDataHandler) (*imapclient.Client, error) {
	fail := func(stage string, err error) error { return &IMAPError{Stage: stage, Mailbox: mb.Name, Err: err} }

	mode := mb.TLS
	if mode == "" {
		mode = targets.TLSImplicit
	}
	if mode == targets.TLSNone && !mb.Insecure {
		return nil, fail(StageConfig, errors.New("tls: none needs insecure: true"))
	}
	tlsCfg, err := mb.TLSConfig()
	if err != nil {
		return nil, fail(StageConfig, err)
	}
	switch strings.ToLower(mb.Auth.Mechanism) {
	case "", targets.AuthPlain, targets.AuthLogin, targets.AuthXOAUTH2:
	default:
		return nil, fail(StageConfig, fmt.Errorf("unknown auth mechanism %q", mb.Auth.Mechanism))
	}
	switch mode {
	case targets.TLSImplicit, targets.TLSStartTLS, targets.TLSNone:
	default:
		return nil, fail(StageConfig, fmt.Errorf("unknown tls mode %q", mb.TLS))
	}
	port := mb.Port
	if port == 0 {
		port = 993
		if mode != targets.TLSImplicit {
			port = 143
		}
	}
	addr := net.JoinHostPort(mb.Host, strconv.Itoa(port))

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fail(StageDial, err)
	}
	// The client has no context support: closing the socket is the only
	// way to interrupt a blocked command.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	opts := &imapclient.Options{
		TLSConfig:             tlsCfg,
		UnilateralDataHandler: handler,
	}
	var c *imapclient.Client
	switch mode {
	case targets.TLSImplicit:
		tlsCfg.NextProtos = []string{"imap"}
		tc := tls.Client(conn, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fail(StageTLS, ctxErr(ctx, err))
		}
		c = imapclient.New(tc, opts)
	case targets.TLSStartTLS:
		// NewStartTLS completes the handshake, so a bad certificate fails
		// here and not on a later command.
		c, err = imapclient.NewStartTLS(conn, opts)
		if err != nil {
			conn.Close()
			return nil, fail(StageTLS, ctxErr(ctx, err))
		}
	default: // TLSNone; Insecure checked above
		c = imapclient.New(conn, opts)
	}
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, fail(StageDial, ctxErr(ctx, err))
	}

	if err := imapLogin(ctx, c, mb, creds); err != nil {
		c.Close()
		return nil, fail(StageLogin, ctxErr(ctx, err))
	}
	// Gmail asks clients to identify themselves; failure is harmless.
	if c.Caps().Has(imap.CapID) {
		if _, err := c.ID(&imap.IDData{Name: "otpprobe", Version: "1"}).Wait(); err != nil {
			var ie *imap.Error
			if !errors.As(err, &ie) {
				c.Close()
				return nil, fail(StageLogin, ctxErr(ctx, err))
			}
		}
	}
	if ctx.Err() != nil {
		c.Close()
		return nil, fail(StageLogin, ctx.Err())
	}
	return c, nil
}

// imapLogin authenticates with the mailbox's mechanism: AUTHENTICATE PLAIN
// when offered (else LOGIN), LOGIN, or AUTHENTICATE XOAUTH2.
func imapLogin(ctx context.Context, c *imapclient.Client, mb targets.Mailbox, creds Credentials) error {
	if creds == nil {
		return errors.New("no credentials configured")
	}
	user, secret, err := creds(ctx)
	if err != nil {
		// The credential source's own error (file missing, command failed)
		// is ours to report; it must not echo the secret.
		return fmt.Errorf("credentials: %w", err)
	}
	return scrubIMAPError(authenticate(c, mb, user, secret), secret)
}

// scrubIMAPError takes secret out of a server's refusal that echoed it (the
// error reaches logs and the watcher's state), keeping its *imap.Error type:
// Temporary looks at it.
func scrubIMAPError(err error, secret string) error {
	if err == nil || scrub(err.Error(), secret) == err.Error() {
		return err
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		clean := *ie
		clean.Text = scrub(ie.Text, secret)
		return &clean
	}
	return errors.New(scrub(err.Error(), secret))
}

func authenticate(c *imapclient.Client, mb targets.Mailbox, user, secret string) error {
	caps := c.Caps()
	switch strings.ToLower(mb.Auth.Mechanism) {
	case targets.AuthXOAUTH2:
		if !caps.Has(imap.AuthCap("XOAUTH2")) {
			return errors.New("server does not offer AUTH=XOAUTH2")
		}
		xc := newXOAUTH2Client(user, secret)
		xc.cancel = true // the caller closes the connection on failure
		return c.Authenticate(xc)
	case targets.AuthLogin:
		return c.Login(user, secret).Wait()
	case targets.AuthPlain, "":
		if caps.Has(imap.AuthCap(sasl.Plain)) {
			return c.Authenticate(sasl.NewPlainClient("", user, secret))
		}
		if caps.Has(imap.CapLoginDisabled) {
			return errors.New("server offers neither AUTH=PLAIN nor LOGIN")
		}
		return c.Login(user, secret).Wait()
	default:
		return fmt.Errorf("unknown auth mechanism %q", mb.Auth.Mechanism)
	}
}

// ctxErr prefers the context's reason over the "use of closed connection"
// that closing the socket from context.AfterFunc produces.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", context.Cause(ctx), err)
	}
	return err
}
