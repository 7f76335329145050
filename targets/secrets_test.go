package targets_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/otpprobe/otpprobe/targets"
)

// Known secret values, each from a different source.
const (
	envPassword  = "S3cret-from-env-Qx81"
	filePassword = "S3cret-from-file-Zk27"
	fileToken    = "S3cret-token-file-Jm55"
	cmdToken     = "S3cret-token-cmd-Wp03"
	envDSN       = "postgres://otp:S3cret-dsn-Lb44@db.example.net/otp"
)

var allSecrets = []string{envPassword, filePassword, fileToken, cmdToken, "S3cret-dsn-Lb44", "S3cret"}

func secretConfig(t *testing.T) (cfg string, dir string) {
	t.Helper()
	dir = t.TempDir()
	write(t, filepath.Join(dir, "pw"), filePassword+"\n")
	write(t, filepath.Join(dir, "token"), fileToken+"\n")
	write(t, filepath.Join(dir, "token.sh"), "#!/bin/sh\necho "+cmdToken+"\necho "+cmdToken+" >&2\n")
	t.Setenv("OTPPROBE_TEST_PW", envPassword)
	t.Setenv("OTPPROBE_TEST_DSN", envDSN)
	return `
senders:
  - name: relay
    host: smtp.example.net
    from: otp@example.com
    auth: {username: otp, password: "${OTPPROBE_TEST_PW}"}
  - name: m365
    preset: m365
    from: otp@example.com
    auth: {username: otp@example.com, token_command: [sh, token.sh]}
mailboxes:
  - name: gmail
    provider: gmail
    address: seed@gmail.com
    auth: {username: seed@gmail.com, password_file: pw}
  - name: outlook
    provider: outlook
    address: seed@outlook.com
    auth: {username: seed@outlook.com, token_file: token}
probes:
  - name: otp
    schedule: "@every 1m"
    senders: [relay, m365]
    mailboxes: [gmail, outlook]
store:
  driver: postgres
  dsn: ${OTPPROBE_TEST_DSN}
`, dir
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, secret := range allSecrets {
		if strings.Contains(s, secret) {
			t.Errorf("%s contains secret %q:\n%s", what, secret, s)
		}
	}
}

// TestSecretsNeverPrinted loads secrets from env, files and a command,
// renders everything the package prints, serializes or returns as an
// error, and asserts the secret bytes appear nowhere.
func TestSecretsNeverPrinted(t *testing.T) {
	cfg, dir := secretConfig(t)
	c, err := targets.Parse([]byte(cfg), dir)
	if err != nil {
		t.Fatal(err)
	}
	// The values did load: the test would prove nothing otherwise.
	relay, _ := c.Sender("relay")
	gmail, _ := c.Mailbox("gmail")
	if relay.Auth.Password.Reveal() != envPassword || gmail.Auth.Password.Reveal() != filePassword || c.Store.DSN.Reveal() != envDSN {
		t.Fatal("secrets did not load")
	}

	var describe bytes.Buffer
	if err := c.Describe(&describe); err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, "Describe", describe.String())
	for _, want := range []string{"password from $OTPPROBE_TEST_PW", "token command sh …",
		"password from " + filepath.Join(dir, "pw"), "token file " + filepath.Join(dir, "token"), "postgres (dsn [redacted])"} {
		if !strings.Contains(describe.String(), want) {
			t.Errorf("Describe lacks %q:\n%s", want, describe.String())
		}
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		assertNoSecret(t, verb, fmt.Sprintf(verb, c))
		assertNoSecret(t, verb+" auth", fmt.Sprintf(verb, relay.Auth))
	}
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, "JSON", string(js))
	ym, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, "YAML", string(ym))
	r := c.Redacted()
	rs, _ := r.Sender("relay")
	if rs.Auth.Password.Reveal() != "[redacted]" || r.Store.DSN.Reveal() != "[redacted]" {
		t.Error("Redacted copy still reveals secrets")
	}
	if m365, _ := r.Sender("m365"); strings.Join(m365.Auth.TokenCommand, " ") != "sh [redacted]" {
		t.Errorf("Redacted token_command %q, want its program only", m365.Auth.TokenCommand)
	}
	if relay.Auth.Password.Reveal() != envPassword {
		t.Error("Redacted changed the original")
	}
}

// TestSecretErrors: errors about secret fields and token commands name the
// field, not the value or the command's output.
func TestSecretErrors(t *testing.T) {
	cfg, dir := secretConfig(t)
	bad := map[string]string{
		"literal in an int field":      strings.Replace(cfg, "    from: otp@example.com\n", "    from: otp@example.com\n    port: "+envPassword+"\n", 1),
		"literal in a bool field":      strings.Replace(cfg, "    provider: gmail\n", "    provider: gmail\n    cleanup: "+envPassword+"\n", 1),
		"literal in a duration":        strings.Replace(cfg, "    schedule:", "    deadline: "+envPassword+"\n    schedule:", 1),
		"password and password_file":   strings.Replace(cfg, "password_file: pw", "password_file: pw, password: "+envPassword, 1),
		"malformed reference":          strings.Replace(cfg, "${OTPPROBE_TEST_PW}", envPassword+"${", 1),
		"password with xoauth2":        strings.Replace(cfg, "token_file: token", "token_file: token, password: "+envPassword, 1),
		"secret as a list":             strings.Replace(cfg, `password: "${OTPPROBE_TEST_PW}"`, "password: ["+envPassword+"]", 1),
		"unknown key holding a secret": strings.Replace(cfg, "  driver: postgres\n", "  driver: postgres\n  passwd: "+envPassword+"\n", 1),
	}
	for name, text := range bad {
		_, err := targets.Parse([]byte(text), dir)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		t.Logf("%s: %v", name, err)
		assertNoSecret(t, name, err.Error())
	}

	c, err := targets.Parse([]byte(cfg), dir)
	if err != nil {
		t.Fatal(err)
	}
	m365, _ := c.Sender("m365")
	m365.Auth.TokenCommand = targets.Command{"sh", "-c", "echo " + cmdToken + "; echo " + cmdToken + " >&2; exit 3"}
	_, err = m365.Auth.Secret(context.Background())
	want := "senders[1] (m365).auth.token_command: failed: exit status 3"
	if err == nil || err.Error() != want {
		t.Errorf("failing token_command: %v; want %s", err, want)
	}
}

func TestAuthSecret(t *testing.T) {
	cfg, dir := secretConfig(t)
	c, err := targets.Parse([]byte(cfg), dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	relay, _ := c.Sender("relay")
	m365, _ := c.Sender("m365")
	outlook, _ := c.Mailbox("outlook")
	for name, tc := range map[string]struct {
		auth targets.Auth
		want string
	}{
		"password":      {relay.Auth, envPassword},
		"token_command": {m365.Auth, cmdToken},
		"token_file":    {outlook.Auth, fileToken},
	} {
		got, err := tc.auth.Secret(ctx)
		if err != nil || got != tc.want {
			t.Errorf("%s: Secret = %q, %v; want %q", name, got, err, tc.want)
		}
	}
	// Tokens rotate: the file is read on every call.
	write(t, filepath.Join(dir, "token"), "  rotated-token \n")
	if got, err := outlook.Auth.Secret(ctx); err != nil || got != "rotated-token" {
		t.Errorf("after rotation: %q, %v", got, err)
	}
	write(t, filepath.Join(dir, "token"), "\n")
	if _, err := outlook.Auth.Secret(ctx); err == nil || !strings.HasPrefix(err.Error(), "mailboxes[1] (outlook).auth.token_file: ") {
		t.Errorf("empty token file: %v", err)
	}
	// The command runs in the config's directory and is bounded by ctx
	// even when a child keeps its stdout open.
	m365.Auth.TokenCommand = targets.Command{"sh", "-c", "sleep 3 & exec sleep 3"}
	ctx2, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = m365.Auth.Secret(ctx2)
	if err == nil || !strings.Contains(err.Error(), "auth.token_command: did not finish") {
		t.Errorf("slow token_command: %v", err)
	}
	// No shell: the arguments reach the program as written (a $VAR is
	// not expanded, a ';' runs nothing), the environment is inherited, and
	// a relative program is taken from the config's directory.
	t.Setenv("OTPPROBE_TEST_TOKEN", "token-from-env")
	write(t, filepath.Join(dir, "env-token"), "#!/bin/sh\nprintf '%s|%s' \"$OTPPROBE_TEST_TOKEN\" \"$1\"\n")
	if err := os.Chmod(filepath.Join(dir, "env-token"), 0o700); err != nil {
		t.Fatal(err)
	}
	argvCfg := strings.Replace(cfg, `[sh, token.sh]`, `[./env-token, "$OTPPROBE_TEST_TOKEN; rm -rf x"]`, 1)
	c2, err := targets.Parse([]byte(argvCfg), dir)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := c2.Sender("m365")
	if got, err := m.Auth.Secret(ctx); err != nil || got != "token-from-env|$OTPPROBE_TEST_TOKEN; rm -rf x" {
		t.Errorf("token_command as argv: %q, %v", got, err)
	}
	// The old string form ran through sh -c: refused with what to write.
	_, err = targets.Parse([]byte(strings.Replace(cfg, `[sh, token.sh]`, `"sh token.sh"`, 1)), dir)
	if err == nil || !strings.Contains(err.Error(), "token_command") || !strings.Contains(err.Error(), "without a shell") || strings.Contains(err.Error(), "\n") {
		t.Errorf("token_command as a string: %v", err)
	}
	m365.Auth.TokenCommand = targets.Command{"true"}
	if _, err := m365.Auth.Secret(ctx); err == nil || !strings.HasSuffix(err.Error(), "token_command: printed no token") {
		t.Errorf("silent token_command: %v", err)
	}
}
