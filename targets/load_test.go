package targets_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/targets"
)

// The example ships placeholder secret files under configs/example-secrets/
// (referenced relative to configs/), so it validates on a fresh clone with
// only BACKUP_RELAY_PASSWORD set, exactly as a user would run it.
func TestExampleConfig(t *testing.T) {
	t.Setenv("BACKUP_RELAY_PASSWORD", "relay-pass-from-env")
	c, err := targets.Load("../configs/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m365, ok := c.Sender("m365")
	if !ok {
		t.Fatal("no sender m365")
	}
	if m365.Host != "smtp.office365.com" || m365.Port != 587 || m365.TLS != targets.TLSStartTLS {
		t.Errorf("m365 preset endpoint = %s:%d %s", m365.Host, m365.Port, m365.TLS)
	}
	if m365.Auth.Mechanism != targets.AuthXOAUTH2 || m365.Domain() != "example.com" {
		t.Errorf("m365 mechanism %q domain %q", m365.Auth.Mechanism, m365.Domain())
	}
	backup, _ := c.Sender("backup")
	if backup.Auth.Password.Reveal() != "relay-pass-from-env" {
		t.Error("backup password not expanded from the environment")
	}
	// Presets pin no folder names: the server's special-use decides.
	want := map[string][4]string{ // host, authserv_id, junk, trash
		"gmail":   {"imap.gmail.com", "mx.google.com", "", ""},
		"yahoo":   {"imap.mail.yahoo.com", "*.yahoo.com", "", ""},
		"outlook": {"outlook.office365.com", "none", "", ""},
	}
	for name, w := range want {
		m, ok := c.Mailbox(name)
		if !ok {
			t.Fatalf("no mailbox %s", name)
		}
		got := [4]string{m.Host, m.AuthservID, m.Junk, m.Trash}
		if got != w || m.Port != 993 || m.TLS != targets.TLSImplicit || !m.CleanupEnabled() {
			t.Errorf("%s = %v %d %s cleanup %v; want %v 993 tls", name, got, m.Port, m.TLS, m.CleanupEnabled(), w)
		}
	}
	gmail, _ := c.Mailbox("gmail")
	if gmail.Auth.Password.Reveal() != "example-gmail-app-password" {
		t.Error("gmail password_file not read (or not trimmed)")
	}
	if dir, _ := filepath.Abs("../configs/example-secrets"); filepath.Dir(gmail.Auth.PasswordFile) != dir {
		t.Errorf("password_file = %s; want it resolved under %s", gmail.Auth.PasswordFile, dir)
	}
	bounces, _ := c.Mailbox(c.Bounces)
	if bounces.CleanupEnabled() || bounces.Provider != targets.ProviderGeneric {
		t.Errorf("bounces cleanup %v provider %q", bounces.CleanupEnabled(), bounces.Provider)
	}
	p := c.Probes[0]
	if p.Deadline != 10*time.Minute || p.LatencySLO != time.Minute {
		t.Errorf("probe deadline %v slo %v", p.Deadline, p.LatencySLO)
	}
	if c.Store.Driver != "sqlite" || c.Store.Path != "./data/otpprobe.db" || c.HTTP.Listen != "127.0.0.1:8080" {
		t.Errorf("store %+v http %+v", c.Store, c.HTTP)
	}
}

const minimal = `
senders:
  - name: relay
    host: smtp.example.net
    from: "Example <otp@example.com>"
mailboxes:
  - name: seed
    host: imap.example.net
    address: seed@example.net
    authserv_id: mx.example.net
    auth: {username: seed, password: pw}
probes:
  - name: otp
    schedule: "*/5 * * * *"
    senders: [relay]
    mailboxes: [seed]
`

func TestDefaults(t *testing.T) {
	c, err := targets.Parse([]byte(minimal), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if c.Agent != host {
		t.Errorf("agent = %q; want the host name %q", c.Agent, host)
	}
	s := c.Senders[0]
	if s.TLS != targets.TLSStartTLS || s.Port != 587 || s.EnvelopeFrom != "otp@example.com" || s.Auth.Mechanism != "" {
		t.Errorf("sender defaults: %s %d envelope %q mechanism %q", s.TLS, s.Port, s.EnvelopeFrom, s.Auth.Mechanism)
	}
	m := c.Mailboxes[0]
	if m.TLS != targets.TLSImplicit || m.Port != 993 || m.Auth.Mechanism != targets.AuthPlain || !m.CleanupEnabled() || m.Provider != "generic" {
		t.Errorf("mailbox defaults: %s %d mechanism %q cleanup %v provider %q", m.TLS, m.Port, m.Auth.Mechanism, m.CleanupEnabled(), m.Provider)
	}
	p := c.Probes[0]
	if p.Deadline != targets.DefaultDeadline || p.LatencySLO != targets.DefaultLatencySLO ||
		p.Message.Subject != targets.DefaultSubject || p.Message.Body != targets.DefaultBody {
		t.Errorf("probe defaults: %+v", p)
	}
	if c.Store.Driver != "sqlite" || c.Store.Path != targets.DefaultStorePath || c.HTTP.Listen != targets.DefaultHTTPListen {
		t.Errorf("store %+v http %+v", c.Store, c.HTTP)
	}
}

func TestPresetExplicitFieldsWin(t *testing.T) {
	cfg := strings.Replace(minimal, "    host: imap.example.net\n", "    provider: gmail\n    host: 127.0.0.21\n    port: 1993\n    junk: Spam\n", 1)
	cfg = strings.Replace(cfg, "    host: smtp.example.net\n", "    preset: m365\n    port: 25\n    auth: {username: u, password: p}\n", 1)
	c, err := targets.Parse([]byte(cfg), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := c.Mailboxes[0]
	if m.Host != "127.0.0.21" || m.Port != 1993 || m.Junk != "Spam" || m.AuthservID != "mx.example.net" || m.Trash != "" {
		t.Errorf("gmail with overrides: %s:%d junk %q authserv %q trash %q", m.Host, m.Port, m.Junk, m.AuthservID, m.Trash)
	}
	s := c.Senders[0]
	if s.Host != "smtp.office365.com" || s.Port != 25 || s.Auth.Mechanism != targets.AuthLogin {
		t.Errorf("m365 with overrides: %s:%d mechanism %q", s.Host, s.Port, s.Auth.Mechanism)
	}
}

func TestSchedules(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for spec, next := range map[string]time.Time{
		"*/5 * * * *":               from.Add(5 * time.Minute),  // 5 fields: minute first
		"30 * * * * *":              from.Add(30 * time.Second), // 6 fields: seconds first
		"@every 1m":                 from.Add(time.Minute),
		"@hourly":                   from.Add(time.Hour),
		"CRON_TZ=UTC 0 */2 * * * *": from.Add(2 * time.Minute),
	} {
		cfg := strings.Replace(minimal, `"*/5 * * * *"`, `"`+spec+`"`, 1)
		c, err := targets.Parse([]byte(cfg), t.TempDir())
		if err != nil {
			t.Errorf("%q: %v", spec, err)
			continue
		}
		s, err := c.Probes[0].CronSchedule()
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Next(from).UTC(); !got.Equal(next) {
			t.Errorf("%q: next after %v = %v; want %v", spec, from, got, next)
		}
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("OTPPROBE_TEST_USER", "seed-user")
	t.Setenv("OTPPROBE_TEST_AGENT", "probe-eu")
	cfg := "agent: ${OTPPROBE_TEST_AGENT}\n" + strings.Replace(minimal, "username: seed,", `username: "${OTPPROBE_TEST_USER}",`, 1)
	c, err := targets.Parse([]byte(cfg), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c.Agent != "probe-eu" || c.Mailboxes[0].Auth.Username != "seed-user" {
		t.Errorf("agent %q username %q", c.Agent, c.Mailboxes[0].Auth.Username)
	}
	// Not expanded twice: a value holding "${...}" stays literal.
	t.Setenv("OTPPROBE_TEST_USER", "${HOME}")
	if c, err = targets.Parse([]byte(cfg), t.TempDir()); err != nil || c.Mailboxes[0].Auth.Username != "${HOME}" {
		t.Errorf("re-expanded: %q, %v", c.Mailboxes[0].Auth.Username, err)
	}
}

func TestMatchAuthservID(t *testing.T) {
	for _, tc := range []struct {
		want, got string
		ok        bool
	}{
		{"mx.google.com", "mx.google.com", true},
		{"mx.google.com", "MX.Google.com", true},
		{"mx.google.com", "mx.google.com.evil.test", false},
		{"none", "", true},
		{"none", "mx.google.com", false},
		{"*.yahoo.com", "atlas-production.v2.mail.bf2.yahoo.com", true},
		{"*.yahoo.com", "yahoo.com", false},
		{"*.yahoo.com", "evil-yahoo.com", false},
		{"", "", false},
		{"spf.icloud.com, dkim-verifier.icloud.com", "DKIM-verifier.icloud.com", true},
		{"spf.icloud.com dkim-verifier.icloud.com", "dmarc.icloud.com", false},
		{"mail.example.com", "mail.example.com/12345", true},
		{"mail.example.com", "mail.example.com.evil/12345", false},
		{"*.example.com", "mx1.example.com/1A2B", true},
		{"none, mx.google.com", "", true},
	} {
		if got := targets.MatchAuthservID(tc.want, tc.got); got != tc.ok {
			t.Errorf("MatchAuthservID(%q, %q) = %v; want %v", tc.want, tc.got, got, tc.ok)
		}
	}
}
