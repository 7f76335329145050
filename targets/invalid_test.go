package targets_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otpprobe/otpprobe/targets"
)

// invalidCases is the exact one-line error of every
// configs/testdata/invalid-*.yaml; $DIR is the testdata directory.
var invalidCases = map[string]string{
	"authserv-wildcard":     `mailboxes[0] (seed).authserv_id: bad authserv-id "*.com" (a wildcard needs a domain with a dot after "*.")`,
	"bad-address":           `senders[0] (relay).from: invalid address "otp-at-example.com": missing '@' or angle-addr`,
	"bad-ca-file":           `senders[0] (relay).ca_file: $DIR/not-a-cert.pem: holds a "PRIVATE KEY" PEM block; want only CERTIFICATE`,
	"bad-cron":              `probes[0] (otp).schedule: invalid cron spec "61 * * * *": end of range (61) above maximum (59): 61`,
	"bad-name":              `mailboxes[0] (Seed).name: must be 1-64 of a-z, 0-9, _ and -, got "Seed"`,
	"bad-port":              `mailboxes[0] (seed).port: must be 1-65535, got 70000`,
	"bad-template":          `probes[0] (otp).message.subject: subject:1: unexpected "[" in operand`,
	"deadline-slo":          `probes[0] (otp).deadline: must be longer than latency_slo (1m0s), got 30s`,
	"duplicate-key":         `senders[0] (relay).port: set twice (line 6)`,
	"duplicate-names":       `mailboxes[1] (seed).name: duplicate; mailboxes[0] has the same name`,
	"duration-unit":         `probes[0] (otp).deadline: a duration needs a unit, like 90s or 10m (line 23)`,
	"empty":                 `config is empty`,
	"env-outside-secret":    `senders[0] (relay).host: ${...} is expanded only in agent, senders[].auth.username, senders[].auth.password, mailboxes[].auth.username, mailboxes[].auth.password, senders[].auth.oauth2.client_secret, mailboxes[].auth.oauth2.client_secret, store.dsn (line 4)`,
	"envelope-display-name": `senders[0] (relay).envelope_from: want a bare address like user@example.com, got "Bounces <bounces@example.com>"`,
	"insecure-with-ca":      `senders[0] (relay).ca_file: insecure: true skips verification, so ca_file would be ignored; set one of them`,
	"mechanism":             `senders[0] (relay).auth.mechanism: must be plain, login or xoauth2, got "cram-md5"`,
	"missing-bounces":       `bounces: unknown mailbox "dsn"`,
	"sender-bounces":        `senders[0] (relay).bounces: unknown mailbox "dsn"`,
	"missing-env":           `senders[0] (relay).auth.password: environment variable OTPPROBE_TEST_UNSET is not set`,
	"missing-password-file": `senders[0] (relay).auth.password_file: open $DIR/does-not-exist.txt: no such file or directory`,
	"missing-token":         `senders[0] (relay).auth: xoauth2 needs oauth2, token_file or token_command`,
	"no-authserv-id":        `probes[0] (otp).mailboxes[0]: mailbox "seed" has no authserv_id, so no verdict could be trusted; set it ("none" for Microsoft)`,
	"no-probes":             `probes: at least one probe is required`,
	"not-a-list":            `senders: expected a list, got a mapping (line 3)`,
	"password-and-file":     `senders[0] (relay).auth.password_file: set either password or password_file, not both`,
	"store-driver":          `store.driver: must be sqlite or postgres, got "mysql"`,
	"retention":             `store.retention.attempts: want days (30d), a duration (720h) or forever, got "7x"`,
	"subject-newline":       `probes[0] (otp).message.subject: renders a line break; a header must be one line`,
	"subject-no-token":      `probes[0] (otp).message.subject: must contain {{.Token}}: the watcher matches by it when a provider does not index X-Otpprobe-Id`,
	"syntax":                `invalid YAML: line 2: did not find expected '-' indicator`,
	"template-range":        `probes[0] (otp).message.body: range is not allowed in message templates`,
	"token-scope":           `http.tokens[0] (ops).scope: must be read or admin, got "write"`,
	"token-short":           `http.tokens[0] (ops): the token is shorter than 16 bytes; use a long random one (e.g. openssl rand -hex 32)`,
	"tls-none":              `senders[0] (relay).tls: none sends credentials in clear text; allow it with insecure: true`,
	"top-level-list":        `top level must be a mapping (senders:, mailboxes:, probes:, ...) (line 2)`,
	"two-documents":         `more than one YAML document; a config is exactly one (line 23)`,
	"unknown-key":           `senders[0] (relay).portt: unknown field; did you mean "port"? (line 5)`,
	"unknown-provider":      `mailboxes[0] (seed).provider: must be gmail, yahoo, outlook or generic, got "hotmail"`,
	"unknown-sender":        `probes[0] (otp).senders[1]: unknown sender "m365"`,
	"wrong-type":            `senders[0] (relay).port: expected an integer, got a string (line 5)`,
}

const testdata = "../configs/testdata"

func TestInvalidConfigs(t *testing.T) {
	unsetEnv(t, "OTPPROBE_TEST_UNSET")
	dir, err := filepath.Abs(testdata)
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(testdata, "invalid-*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 15 {
		t.Fatalf("only %d invalid examples", len(files))
	}
	seen := map[string]bool{}
	for _, path := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "invalid-"), ".yaml")
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			want, ok := invalidCases[name]
			if !ok {
				t.Fatalf("%s has no expected error in invalidCases", path)
			}
			want = path + ": " + strings.ReplaceAll(want, "$DIR", dir)
			_, err := targets.Load(path)
			if err == nil {
				t.Fatalf("Load(%s) succeeded; want %q", path, want)
			}
			if got := err.Error(); got != want {
				t.Errorf("Load(%s):\n got %s\nwant %s", path, got, want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			if strings.Contains(err.Error(), "not-a-real-password") {
				t.Errorf("error leaks the password: %q", err)
			}
		})
	}
	for name := range invalidCases {
		if !seen[name] {
			t.Errorf("invalidCases[%q] has no file invalid-%s.yaml", name, name)
		}
	}
}

// unsetEnv removes name for the test and restores it afterwards.
func unsetEnv(t *testing.T, name string) {
	t.Helper()
	t.Setenv(name, "")
	os.Unsetenv(name)
}

// FuzzParse: Parse returns a value or an error for any input; it never
// panics and its errors stay on one line.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join(testdata, "*.yaml"))
	seeds = append(seeds, "../configs/example.yaml")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("senders: *a\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := targets.Parse(data, dir)
		if err == nil && c == nil {
			t.Fatal("nil config without error")
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Fatalf("multi-line error: %q", err)
		}
	})
}
