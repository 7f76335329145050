package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otpprobe/otpprobe/lab"
)

// TestLabOnceOAuthScenarios runs the prober against the lab's OAuth2
// scenarios: how the m365 sender authenticates (--m365), the outcome of
// its canaries and what the diagnosis must say. The backup relay is never
// affected.
func TestLabOnceOAuthScenarios(t *testing.T) {
	for _, tc := range []struct {
		scenario, m365 string
		outcome        string // m365's canaries
		stage          string
		code           int
		enhanced       string
		diagnosis      []string
	}{
		{scenario: lab.Healthy, m365: lab.M365OAuth2, outcome: "inbox"},
		{scenario: lab.Healthy, m365: lab.M365OAuth2Cert, outcome: "inbox"},
		{scenario: "m365-basic-auth-disabled", m365: lab.M365Password, outcome: "send_failed", stage: "auth", code: 535, enhanced: "5.7.139",
			diagnosis: []string{"SMTP AUTH Basic is disabled", "auth.oauth2", "XOAUTH2", "type: graph"}},
		{scenario: "m365-basic-auth-disabled", m365: lab.M365OAuth2, outcome: "inbox"}, // XOAUTH2 is not Basic
		{scenario: "oauth-secret-expired", m365: lab.M365OAuth2, outcome: "send_failed", stage: "token",
			diagnosis: []string{"could not get an OAuth2 access token", "invalid_client", "AADSTS7000222", "client secret"}},
		{scenario: "oauth-secret-expired", m365: lab.M365OAuth2Cert, outcome: "inbox"}, // the certificate still works
		{scenario: lab.Healthy, m365: lab.M365Graph, outcome: "inbox"},
		{scenario: "graph-throttled", m365: lab.M365Graph, outcome: "send_failed", stage: "submit", code: 429,
			diagnosis: []string{"Microsoft Graph throttled the sendMail of m365 with HTTP 429", "ApplicationThrottled", "Retry-After 7s"}},
		{scenario: "oauth-secret-expired", m365: lab.M365Graph, outcome: "send_failed", stage: "token",
			diagnosis: []string{"could not get an OAuth2 access token", "AADSTS7000222"}},
	} {
		t.Run(tc.scenario+"/"+tc.m365, func(t *testing.T) {
			want := exitOK
			if tc.outcome != "inbox" {
				want = exitFailed
			}
			res := labOnce(t, want, "--scenario", tc.scenario, "--m365", tc.m365)
			for _, a := range res.Attempts {
				if a.Sender != lab.SenderM365 {
					if a.Outcome != "inbox" {
						t.Errorf("%s→%s: %s, want inbox", a.Sender, a.Mailbox, a.Outcome)
					}
					continue
				}
				if a.Outcome != tc.outcome || a.SMTP.Stage != tc.stage || (tc.code != 0 && (a.SMTP.Code != tc.code || a.SMTP.Enhanced != tc.enhanced)) {
					t.Errorf("m365→%s: %s %+v, want %s at stage %q code %d %s", a.Mailbox, a.Outcome, a.SMTP, tc.outcome, tc.stage, tc.code, tc.enhanced)
				}
				for _, d := range tc.diagnosis {
					if !strings.Contains(a.Diagnosis, d) {
						t.Errorf("m365→%s: diagnosis %q lacks %q", a.Mailbox, a.Diagnosis, d)
					}
				}
			}
		})
	}
}

// TestLabOnceRefreshRevoked: the outlook seed logs in over IMAP with
// XOAUTH2 from its refresh token; revoked, its canaries are lost with a
// diagnosis that names the token endpoint's invalid_grant and the fix.
func TestLabOnceRefreshRevoked(t *testing.T) {
	res := labOnce(t, exitFailed, "--scenario", "oauth-refresh-revoked", "--deadline", "4s")
	for _, a := range res.Attempts {
		if a.Mailbox != lab.ProviderOutlook {
			if a.Outcome != "inbox" {
				t.Errorf("%s→%s: %s, want inbox", a.Sender, a.Mailbox, a.Outcome)
			}
			continue
		}
		if a.Outcome != "lost" {
			t.Errorf("%s→outlook: %s, want lost", a.Sender, a.Outcome)
		}
		for _, d := range []string{"could not watch outlook", "invalid_grant", "AADSTS70008", "otpprobe auth login"} {
			if !strings.Contains(a.Diagnosis, d) {
				t.Errorf("%s→outlook: diagnosis %q lacks %q", a.Sender, a.Diagnosis, d)
			}
		}
	}
}

// TestValidateWarnsPasswordToMicrosoft: a password login with the m365
// preset or to an outlook mailbox loads (exit 0) with a warning on stderr.
func TestValidateWarnsPasswordToMicrosoft(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte(`senders:
  - name: m365
    preset: m365
    from: "Bank <otp@example.com>"
    auth: {username: otp@example.com, password: pw-not-printed}
mailboxes:
  - name: outlook
    provider: outlook
    address: seed@outlook.com
    auth: {username: seed@outlook.com, password: pw-not-printed}
probes:
  - {name: otp, schedule: "@every 1m", senders: [m365], mailboxes: [outlook]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, context.Background(), "validate", "--config", cfg)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"warning: senders[0] (m365).auth: the m365 preset logs in with a password", "535 5.7.139",
		"warning: mailboxes[0] (outlook).auth: Outlook IMAP takes OAuth2 only"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(out, "warning") || strings.Contains(out+errOut, "pw-not-printed") {
		t.Errorf("warning on stdout or password printed:\n%s\n%s", out, errOut)
	}
	t.Setenv("BACKUP_RELAY_PASSWORD", "relay-pass")
	code, _, errOut = run(t, context.Background(), "validate", "--config", "../../configs/example.yaml")
	if code != exitOK || strings.Contains(errOut, "warning") {
		t.Errorf("the production example warns (exit %d):\n%s", code, errOut)
	}
}
