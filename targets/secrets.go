package targets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// expandable lists the fields where ${ENV_VAR} is replaced by the
// variable's value: the secrets, plus the user names and the agent name
// that deployments commonly template. Anywhere else "${" is an error, so a
// reference can never silently stay literal.
var expandable = []string{
	"agent",
	"senders[].auth.username",
	"senders[].auth.password",
	"mailboxes[].auth.username",
	"mailboxes[].auth.password",
	"senders[].auth.oauth2.client_secret",
	"mailboxes[].auth.oauth2.client_secret",
	"store.dsn",
}

const (
	maxSecretFileSize  = 64 << 10 // a password or an access token, not a file to slurp
	tokenCommandLimit  = 30 * time.Second
	tokenCommandGrace  = time.Second // WaitDelay: a child holding stdout must not hang us
	passwordFromInline = "inline"
)

// shellExpanded fields are run by sh, which expands ${VAR} itself when the
// command runs: the way to hand a token helper its client secret without
// writing it into the config.
var shellExpanded = map[string]bool{
	"senders[].auth.token_command":   true,
	"mailboxes[].auth.token_command": true,
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

func checkExpansions(refs []nodeRef) error {
	allowed := make(map[string]bool, len(expandable))
	for _, s := range expandable {
		allowed[s] = true
	}
	for _, r := range refs {
		if r.value.Kind != yaml.ScalarNode || !strings.Contains(r.value.Value, "${") || allowed[r.shape] || shellExpanded[r.shape] {
			continue
		}
		return &Error{Path: r.path, Line: r.value.Line,
			Msg: "${...} is expanded only in " + strings.Join(expandable, ", ")}
	}
	return nil
}

// expand replaces ${VAR} references in s. Errors name the variable and
// never echo s: it may be a secret.
func expand(path, s string) (string, error) {
	if strings.Contains(envRef.ReplaceAllString(s, ""), "${") {
		return "", errorf(path, "malformed ${...} reference; want ${NAME} with letters, digits and _")
	}
	var err error
	out := envRef.ReplaceAllStringFunc(s, func(ref string) string {
		name := ref[2 : len(ref)-1]
		v, ok := os.LookupEnv(name)
		if !ok && err == nil {
			err = errorf(path, "environment variable %s is not set", name)
		}
		return v
	})
	if err != nil {
		return "", err
	}
	return out, nil
}

func (c *Config) resolveSecrets(dir string) error {
	var err error
	if c.Agent, err = expand("agent", c.Agent); err != nil {
		return err
	}
	for i := range c.Senders {
		s := &c.Senders[i]
		p := item("senders", i, s.Name)
		if err := s.Auth.resolve(field(p, "auth"), dir); err != nil {
			return err
		}
		if s.CAFile, err = resolvePath(dir, s.CAFile); err != nil {
			return errorf(field(p, "ca_file"), "%v", err)
		}
	}
	for i := range c.Mailboxes {
		m := &c.Mailboxes[i]
		p := item("mailboxes", i, m.Name)
		if err := m.Auth.resolve(field(p, "auth"), dir); err != nil {
			return err
		}
		if m.CAFile, err = resolvePath(dir, m.CAFile); err != nil {
			return errorf(field(p, "ca_file"), "%v", err)
		}
	}
	dsn, err := expand("store.dsn", c.Store.DSN.Reveal())
	if err != nil {
		return err
	}
	c.Store.DSN = Secret(dsn)
	return nil
}

func (a *Auth) resolve(path, dir string) error {
	a.path, a.dir = path, dir
	var err error
	if a.Username, err = expand(field(path, "username"), a.Username); err != nil {
		return err
	}
	if a.Password != "" && a.PasswordFile != "" {
		return errorf(field(path, "password_file"), "set either password or password_file, not both")
	}
	switch {
	case a.PasswordFile != "":
		if a.PasswordFile, err = resolvePath(dir, a.PasswordFile); err != nil {
			return errorf(field(path, "password_file"), "%v", err)
		}
		pw, err := readSecretFile(a.PasswordFile)
		if err != nil {
			return errorf(field(path, "password_file"), "%v", err)
		}
		a.Password, a.passwordIn = Secret(pw), a.PasswordFile
	case a.Password != "":
		raw := a.Password.Reveal()
		pw, err := expand(field(path, "password"), raw)
		if err != nil {
			return err
		}
		if pw == "" {
			return errorf(field(path, "password"), "is empty after expanding ${...}")
		}
		a.Password, a.passwordIn = Secret(pw), passwordFromInline
		if m := envRef.FindStringSubmatch(raw); m != nil && m[0] == raw {
			a.passwordIn = "$" + m[1]
		}
	}
	if a.TokenFile, err = resolvePath(dir, a.TokenFile); err != nil {
		return errorf(field(path, "token_file"), "%v", err)
	}
	if a.OAuth2 != nil {
		return a.OAuth2.resolve(field(path, "oauth2"), dir)
	}
	return nil
}

// resolvePath makes p absolute against the config directory, so a later
// chdir or a daemon's working directory cannot change what it names.
func resolvePath(dir, p string) (string, error) {
	if p == "" {
		return "", nil
	}
	if strings.ContainsRune(p, 0) {
		return "", errors.New("path contains a NUL byte")
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	return filepath.Abs(p)
}

// readSecretFile reads a password or token file. Only the line ending is
// trimmed for passwords (spaces may be part of one); errors name the
// file, never its content.
func readSecretFile(path string) (string, error) {
	data, err := readFile(path, maxSecretFileSize)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(data), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// Secret returns the credential to authenticate with: the password for
// plain and login (password_file read again each time), or for xoauth2 a fresh access token read from
// token_file or printed by token_command (run with sh -c in the config's
// directory; bounded by ctx and at most 30s). Tokens expire, so they are
// read on every call. Errors name the field, never the output.
func (a Auth) Secret(ctx context.Context) (string, error) {
	path := a.path
	if path == "" {
		path = "auth"
	}
	switch a.Mechanism {
	case AuthXOAUTH2:
		switch {
		case a.TokenFile != "":
			tok, err := readSecretFile(a.TokenFile)
			if err != nil {
				return "", errorf(field(path, "token_file"), "%v", err)
			}
			return strings.TrimSpace(tok), nil
		case a.TokenCommand.Set():
			return a.runTokenCommand(ctx, field(path, "token_command"))
		case a.OAuth2 != nil:
			return "", errorf(field(path, "oauth2"), "is a token source: get tokens through package token")
		}
		return "", errorf(path, "xoauth2 needs token_file or token_command")
	case AuthPlain, AuthLogin:
		if a.PasswordFile != "" {
			// Read again at each login: a password changed in its file is
			// used from the next login on (a watcher whose login was
			// refused retries with it), without a reload.
			pw, err := readSecretFile(a.PasswordFile)
			if err != nil {
				return "", errorf(field(path, "password_file"), "%v", err)
			}
			return pw, nil
		}
		if a.Password == "" {
			return "", errorf(field(path, "password"), "not set")
		}
		return a.Password.Reveal(), nil
	}
	return "", errorf(field(path, "mechanism"), "no credentials for mechanism %q", a.Mechanism)
}

func (a Auth) runTokenCommand(ctx context.Context, path string) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, tokenCommandLimit)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, a.TokenCommand[0], a.TokenCommand[1:]...)
	cmd.Dir = a.dir
	cmd.WaitDelay = tokenCommandGrace
	out := &limitedBuffer{limit: maxSecretFileSize}
	cmd.Stdout = out // stderr is dropped: it may echo the token
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		switch {
		case ctx.Err() != nil:
			return "", errorf(path, "did not finish: %v", ctx.Err())
		case out.overflow:
			return "", errorf(path, "printed more than %d bytes", maxSecretFileSize)
		case errors.As(err, &ee):
			return "", errorf(path, "failed: %s", ee.ProcessState)
		}
		return "", errorf(path, "failed to run: %v", err)
	}
	tok := strings.TrimSpace(out.String())
	if tok == "" {
		return "", errorf(path, "printed no token")
	}
	return tok, nil
}

// limitedBuffer fails writes past limit, which stops a runaway command.
type limitedBuffer struct {
	bytes.Buffer
	limit    int
	overflow bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.limit {
		b.overflow = true
		return 0, errors.New("output too large")
	}
	return b.Buffer.Write(p)
}
