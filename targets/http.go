package targets

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

// APIToken is a bearer token for the HTTP API. Exactly one of TokenFile
// (relative to the config's directory) and TokenEnv (an environment
// variable's name) holds the token; Name is what the audit log records.
type APIToken struct {
	Name      string `yaml:"name"`
	TokenFile string `yaml:"token_file"`
	TokenEnv  string `yaml:"token_env"`
	Scope     string `yaml:"scope"` // read | admin

	token Secret
}

// Token scopes: read may GET, admin may also pin and unpin.
const (
	ScopeRead  = "read"
	ScopeAdmin = "admin"
)

// MetricsAuth values.
const (
	MetricsAuthOpen = "open"
	MetricsAuthRead = "read"
)

// minTokenLen keeps guessable tokens out: 16 bytes of a random token.
const minTokenLen = 16

// Token is the bearer token, read at load.
func (t APIToken) Token() Secret { return t.token }

// WithToken returns a copy of t holding token, for tokens built in code.
func (t APIToken) WithToken(token string) APIToken {
	t.token = Secret(token)
	return t
}

// ListenerTLS is the HTTP listener's certificate and key (PEM files,
// relative to the config's directory).
type ListenerTLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// check resolves the tokens and TLS files and validates the rest of
// http:; dir is the config's directory.
func (h *HTTP) check(dir string) error {
	if _, _, err := net.SplitHostPort(h.Listen); err != nil {
		return errorf("http.listen", "want host:port, got %q", h.Listen)
	}
	switch h.MetricsAuth {
	case "":
		h.MetricsAuth = MetricsAuthOpen
	case MetricsAuthOpen, MetricsAuthRead:
	default:
		return errorf("http.metrics_auth", "must be open or read, got %q", h.MetricsAuth)
	}
	if h.MetricsAuth == MetricsAuthRead && len(h.Tokens) == 0 {
		return errorf("http.metrics_auth", "read needs http.tokens")
	}
	names := map[string]int{}
	seen := map[string]string{}
	for i := range h.Tokens {
		t := &h.Tokens[i]
		p := item("http.tokens", i, t.Name)
		if err := checkName(p, "http.tokens", t.Name, names, i); err != nil {
			return err
		}
		if t.Scope != ScopeRead && t.Scope != ScopeAdmin {
			return errorf(field(p, "scope"), "must be read or admin, got %q", t.Scope)
		}
		switch {
		case t.TokenFile != "" && t.TokenEnv != "":
			return errorf(p, "set either token_file or token_env, not both")
		case t.TokenFile != "":
			path, err := resolvePath(dir, t.TokenFile)
			if err != nil {
				return errorf(field(p, "token_file"), "%v", err)
			}
			s, err := ReadTokenFile(path)
			if err != nil {
				return errorf(field(p, "token_file"), "%v", err)
			}
			t.TokenFile, t.token = path, Secret(s)
		case t.TokenEnv != "":
			v, ok := os.LookupEnv(t.TokenEnv)
			if !ok {
				return errorf(field(p, "token_env"), "environment variable %s is not set", t.TokenEnv)
			}
			t.token = Secret(strings.TrimSpace(v))
		default:
			return errorf(p, "token_file or token_env is required")
		}
		if len(t.token) < minTokenLen {
			return errorf(p, "the token is shorter than %d bytes; use a long random one (e.g. openssl rand -hex 32)", minTokenLen)
		}
		if strings.ContainsAny(t.token.Reveal(), " \t\r\n") {
			return errorf(p, "the token contains white space; a bearer token cannot")
		}
		if other, dup := seen[t.token.Reveal()]; dup {
			return errorf(p, "has the same token as %s; each token must name one holder", other)
		}
		seen[t.token.Reveal()] = p
	}
	if h.TLS != nil {
		for _, f := range []struct {
			name string
			path *string
		}{{"cert_file", &h.TLS.CertFile}, {"key_file", &h.TLS.KeyFile}} {
			if *f.path == "" {
				return errorf(field("http.tls", f.name), "required")
			}
			abs, err := resolvePath(dir, *f.path)
			if err != nil {
				return errorf(field("http.tls", f.name), "%v", err)
			}
			*f.path = abs
		}
		if _, err := tls.LoadX509KeyPair(h.TLS.CertFile, h.TLS.KeyFile); err != nil {
			return errorf("http.tls", "cannot load the certificate and key: %v", firstLine(err.Error()))
		}
	}
	return nil
}

// firstLine keeps an error to one line (the key's content never appears
// in crypto/tls errors, only its kind).
func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// Loopback reports whether the listen address only accepts connections
// from this machine (a loopback IP or "localhost").
func (h HTTP) Loopback() bool {
	host, _, err := net.SplitHostPort(h.Listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// CheckExposure is run's guard: listening beyond loopback without tokens
// needs allow_unauthenticated: true.
func (h HTTP) CheckExposure() error {
	if len(h.Tokens) > 0 || h.Loopback() || h.AllowUnauthenticated {
		return nil
	}
	return fmt.Errorf("http.listen: %s is reachable from other machines and http.tokens is empty: anyone could pin routes; add http.tokens or set http.allow_unauthenticated: true", h.Listen)
}

// ClientAuth is how otpprobe authenticates to a notification receiver
// (an Alertmanager or webhook behind a proxy): Basic or bearer
// credentials, and a client certificate for mutual TLS. Files are
// relative to the config's directory and read at load.
type ClientAuth struct {
	BasicAuth       *BasicAuth `yaml:"basic_auth"`
	BearerTokenFile string     `yaml:"bearer_token_file"`
	CertFile        string     `yaml:"cert_file"` // client certificate (PEM)
	KeyFile         string     `yaml:"key_file"`  // its key (PEM)

	bearer Secret
}

// BasicAuth is a user name and a password read from a file.
type BasicAuth struct {
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`

	password Secret
}

// Password is the Basic password, read at load.
func (b BasicAuth) Password() Secret { return b.password }

// BearerToken is the bearer token, read at load.
func (c ClientAuth) BearerToken() Secret { return c.bearer }

func (c *ClientAuth) check(path, dir string) error {
	if c.BasicAuth != nil && c.BearerTokenFile != "" {
		return errorf(path, "set either basic_auth or bearer_token_file, not both")
	}
	if b := c.BasicAuth; b != nil {
		if b.Username == "" {
			return errorf(field(path, "basic_auth.username"), "required")
		}
		if b.PasswordFile == "" {
			return errorf(field(path, "basic_auth.password_file"), "required")
		}
		abs, err := resolvePath(dir, b.PasswordFile)
		if err != nil {
			return errorf(field(path, "basic_auth.password_file"), "%v", err)
		}
		pw, err := readSecretFile(abs)
		if err != nil {
			return errorf(field(path, "basic_auth.password_file"), "%v", err)
		}
		b.PasswordFile, b.password = abs, Secret(pw)
	}
	if c.BearerTokenFile != "" {
		abs, err := resolvePath(dir, c.BearerTokenFile)
		if err != nil {
			return errorf(field(path, "bearer_token_file"), "%v", err)
		}
		tok, err := ReadTokenFile(abs)
		if err != nil {
			return errorf(field(path, "bearer_token_file"), "%v", err)
		}
		c.BearerTokenFile, c.bearer = abs, Secret(tok)
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errorf(path, "cert_file and key_file go together")
	}
	if c.CertFile != "" {
		var err error
		if c.CertFile, err = resolvePath(dir, c.CertFile); err != nil {
			return errorf(field(path, "cert_file"), "%v", err)
		}
		if c.KeyFile, err = resolvePath(dir, c.KeyFile); err != nil {
			return errorf(field(path, "key_file"), "%v", err)
		}
		if _, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile); err != nil {
			return errorf(field(path, "cert_file"), "cannot load the client certificate and key: %v", firstLine(err.Error()))
		}
	}
	return nil
}

// ReadTokenFile reads a bearer token file as http.tokens does (for
// clients such as otpprobe healthcheck); errors name the file, never its
// content.
func ReadTokenFile(path string) (string, error) {
	s, err := readSecretFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(s), nil
}
