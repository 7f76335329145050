package targets_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/targets"
)

// reportingBase is a valid config with two senders and three providers;
// tests append routes:, slos: and alerts: to it.
const reportingBase = `
senders:
  - {name: m365, host: smtp.example.com, auth: {username: u, password: p}, from: otp@example.com}
  - {name: backup, host: relay.example.com, auth: {username: u, password: p}, from: otp@example.com}
  - {name: spare, host: spare.example.com, auth: {username: u, password: p}, from: otp@example.com}
mailboxes:
  - {name: gmail, provider: gmail, address: seed@gmail.example, auth: {username: u, password: p}}
  - {name: yahoo, provider: yahoo, address: seed@yahoo.example, auth: {username: u, password: p}}
  - {name: outlook, provider: outlook, address: seed@outlook.example, auth: {username: u, password: p}}
probes:
  - name: otp
    schedule: "@every 1m"
    senders: [m365, backup]
    mailboxes: [gmail, yahoo, outlook]
`

func parseReporting(t *testing.T, extra string) (*targets.Config, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hook.secret"), []byte("0123456789abcdef-webhook\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return targets.Parse([]byte(reportingBase+extra), dir)
}

func TestRouteDefaults(t *testing.T) {
	c, err := parseReporting(t, `
routes:
  - name: otp
    primary: m365
    backups: [backup]
    exec: {command: [/bin/true]}
slos:
  - {name: otp-inbox, route: otp, objective: 99.5}
  - {name: m365-gmail, sender: m365, provider: gmail, objective: 99, latency: 30s, window: 168h}
`)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := c.Route("otp")
	if !ok {
		t.Fatal("no route otp")
	}
	if r.UnhealthyProviders != 2 || r.UnhealthyRounds != 3 || r.HealthyRounds != 5 || r.MinHold != 10*time.Minute {
		t.Errorf("defaults: K=%d N=%d M=%d hold=%v", r.UnhealthyProviders, r.UnhealthyRounds, r.HealthyRounds, r.MinHold)
	}
	if got := r.Senders(); strings.Join(got, ",") != "m365,backup" {
		t.Errorf("Senders() = %v", got)
	}
	if r.Exec.Timeout != targets.DefaultExecTimeout || !filepath.IsAbs(r.Exec.Dir()) {
		t.Errorf("exec timeout %v dir %q", r.Exec.Timeout, r.Exec.Dir())
	}
	if s := c.SLOs[0]; s.Latency != time.Minute || s.Window != 28*24*time.Hour || s.Target() != 0.995 {
		t.Errorf("SLO defaults: %+v", s)
	}
	if c.Alerts.SenderDownRounds != 2 || c.Alerts.SpamAttempts != 2 || c.Alerts.VerdictAttempts != 2 {
		t.Errorf("alert defaults: %+v", c.Alerts)
	}
	if got := c.SLOs[1].String(); got != "m365-gmail: 99% of attempts of sender m365 to gmail in the inbox within 30s over 168h0m0s" {
		t.Errorf("String() = %q", got)
	}
}

func TestWebhookSecret(t *testing.T) {
	t.Setenv("OTPPROBE_TEST_HOOK", "  from-the-environment-0123  ")
	c, err := parseReporting(t, `
alerts:
  webhooks:
    - {name: ops, url: "https://hooks.example.com/otp", secret_file: hook.secret}
    - {name: env, url: "http://127.0.0.1:9/x", secret_env: OTPPROBE_TEST_HOOK, timeout: 3s}
  alertmanagers:
    - {name: am, url: "http://alertmanager:9093"}
`)
	if err != nil {
		t.Fatal(err)
	}
	ops, env := c.Alerts.Webhooks[0], c.Alerts.Webhooks[1]
	if ops.Secret().Reveal() != "0123456789abcdef-webhook" || !filepath.IsAbs(ops.SecretFile) || ops.Timeout != 10*time.Second {
		t.Errorf("ops: secret from file %q, timeout %v", ops.SecretFile, ops.Timeout)
	}
	if env.Secret().Reveal() != "from-the-environment-0123" || env.Timeout != 3*time.Second {
		t.Errorf("env: secret not trimmed from the environment, timeout %v", env.Timeout)
	}
	if ops.Secret().String() != "[redacted]" {
		t.Error("a webhook secret prints")
	}
	if got := strings.Join(c.Alerts.NotifierNames(), " "); got != "webhook:ops webhook:env alertmanager:am" {
		t.Errorf("NotifierNames() = %s", got)
	}
}

// TestInvalidReporting: each mistake gets one line naming the field.
func TestInvalidReporting(t *testing.T) {
	t.Setenv("OTPPROBE_TEST_SHORT", "short")
	cases := map[string]struct{ yaml, want string }{
		"no primary":        {"routes: [{name: otp, backups: [backup]}]", `routes[0] (otp).primary: required: the sender OTP mail normally leaves through`},
		"unknown primary":   {"routes: [{name: otp, primary: sendgrid, backups: [backup]}]", `routes[0] (otp).primary: unknown sender "sendgrid"`},
		"no backups":        {"routes: [{name: otp, primary: m365}]", `routes[0] (otp).backups: at least one backup sender is required to fail over to`},
		"backup is primary": {"routes: [{name: otp, primary: m365, backups: [m365]}]", `routes[0] (otp).backups[0]: "m365" is the primary; a backup must be another sender`},
		"backup twice":      {"routes: [{name: otp, primary: m365, backups: [backup, backup]}]", `routes[0] (otp).backups[1]: sender "backup" listed twice`},
		"backup unprobed":   {"routes: [{name: otp, primary: m365, backups: [spare]}]", `routes[0] (otp): no probe sends through "spare"; the route needs its health`},
		"unknown probe":     {"routes: [{name: otp, primary: m365, backups: [backup], probe: nope}]", `routes[0] (otp).probe: unknown probe "nope"`},
		"K too large":       {"routes: [{name: otp, primary: m365, backups: [backup], unhealthy_providers: 4}]", `routes[0] (otp).unhealthy_providers: must be 1-3 (the providers its probes reach), got 4`},
		"N negative":        {"routes: [{name: otp, primary: m365, backups: [backup], unhealthy_rounds: -1}]", `routes[0] (otp).unhealthy_rounds: must be 1-1000, got -1`},
		"quorum negative":   {"routes: [{name: otp, primary: m365, backups: [backup], quorum: -1}]", `routes[0] (otp).quorum: must be 1-100 agents (0 or unset: a majority of the agents that reported), got -1`},
		"quorum on sqlite":  {"routes: [{name: otp, primary: m365, backups: [backup], quorum: 2}]", `routes[0] (otp).quorum: counts agents sharing a PostgreSQL store; with store.driver sqlite there is one agent, got 2`},
		"hold negative":     {"routes: [{name: otp, primary: m365, backups: [backup], min_hold: -1m}]", `routes[0] (otp).min_hold: must not be negative, got -1m0s`},
		"duplicate route":   {"routes: [{name: otp, primary: m365, backups: [backup]}, {name: otp, primary: backup, backups: [m365]}]", `routes[1] (otp).name: duplicate; routes[0] has the same name`},
		"unknown webhook":   {"routes: [{name: otp, primary: m365, backups: [backup], webhooks: [ops]}]", `routes[0] (otp).webhooks[0]: unknown webhook "ops" (alerts.webhooks names them)`},
		"empty exec":        {"routes: [{name: otp, primary: m365, backups: [backup], exec: {timeout: 1s}}]", `routes[0] (otp).exec.command: required: the program and its arguments, e.g. [/usr/local/bin/switch-sender]`},
		"slo scope":         {"slos: [{name: s, objective: 99}]", `slos[0] (s): set route or sender: what the objective covers`},
		"slo both":          {"slos: [{name: s, route: otp, sender: m365, objective: 99}]", `slos[0] (s).sender: set either route or sender, not both`},
		"slo route":         {"slos: [{name: s, route: otp, objective: 99}]", `slos[0] (s).route: unknown route "otp"`},
		"slo provider":      {"slos: [{name: s, sender: m365, provider: aol, objective: 99}]", `slos[0] (s).provider: no mailbox has provider "aol"`},
		"slo objective":     {"slos: [{name: s, sender: m365, objective: 100}]", `slos[0] (s).objective: must be a percentage above 0 and below 100, like 99.5, got 100`},
		"slo ratio":         {"slos: [{name: s, sender: m365, objective: 0}]", `slos[0] (s).objective: must be a percentage above 0 and below 100, like 99.5, got 0`},
		"slo window":        {"slos: [{name: s, sender: m365, objective: 99, window: 1h}]", `slos[0] (s).window: must be at least 6h, got 1h0m0s`},
		"slo latency unit":  {"slos: [{name: s, sender: m365, objective: 99, latency: 60}]", `slos[0] (s).latency: a duration needs a unit, like 90s or 10m (line 15)`},
		"webhook url":       {"alerts: {webhooks: [{name: ops, url: 'ftp://x/y?token=secret', secret_file: hook.secret}]}", `alerts.webhooks[0] (ops).url: want an http:// or https:// URL, got "ftp://x/y"`},
		"webhook userinfo":  {"alerts: {webhooks: [{name: ops, url: 'https://u:pw@x/y', secret_file: hook.secret}]}", `alerts.webhooks[0] (ops).url: must not carry credentials; webhooks are signed with secret_file instead`},
		"webhook no secret": {"alerts: {webhooks: [{name: ops, url: 'https://x/y'}]}", `alerts.webhooks[0] (ops): secret_file or secret_env is required: receivers verify the HMAC signature`},
		"webhook two":       {"alerts: {webhooks: [{name: ops, url: 'https://x/y', secret_file: hook.secret, secret_env: X}]}", `alerts.webhooks[0] (ops): set either secret_file or secret_env, not both`},
		"webhook short":     {"alerts: {webhooks: [{name: ops, url: 'https://x/y', secret_env: OTPPROBE_TEST_SHORT}]}", `alerts.webhooks[0] (ops): the secret is shorter than 16 bytes; use a long random one`},
		"webhook env":       {"alerts: {webhooks: [{name: ops, url: 'https://x/y', secret_env: OTPPROBE_TEST_UNSET_HOOK}]}", `alerts.webhooks[0] (ops).secret_env: environment variable OTPPROBE_TEST_UNSET_HOOK is not set`},
		"webhook file":      {"alerts: {webhooks: [{name: ops, url: 'https://x/y', secret_file: missing.secret}]}", `alerts.webhooks[0] (ops).secret_file: open $DIR/missing.secret: no such file or directory`},
		"am url":            {"alerts: {alertmanagers: [{name: am, url: 'alertmanager:9093'}]}", `alerts.alertmanagers[0] (am).url: want an http:// or https:// URL, got "alertmanager:9093"`},
		"alert counts":      {"alerts: {spam_attempts: 5000}", `alerts.spam_attempts: must be 1-1000, got 5000`},
		"unknown key":       {"routes: [{name: otp, primary: m365, backups: [backup], unhealthy_round: 2}]", `routes[0] (otp).unhealthy_round: unknown field; did you mean "unhealthy_rounds"? (line 15)`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := targets.Parse([]byte(reportingBase+c.yaml+"\n"), dir)
			if err == nil {
				t.Fatalf("accepted:\n%s", c.yaml)
			}
			want := strings.ReplaceAll(c.want, "$DIR", dir)
			if err.Error() != want {
				t.Errorf("\n got %s\nwant %s", err, want)
			}
			if strings.Contains(err.Error(), "secret") && strings.Contains(err.Error(), "token=") {
				t.Errorf("error leaks a URL query: %s", err)
			}
		})
	}
}
