package alert_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/reports/alert"
	"github.com/otpprobe/otpprobe/targets"
)

// TestClientAuth: an Alertmanager behind mutual TLS and Basic auth, and a
// webhook behind a bearer token, get the credentials the config names.
func TestClientAuth(t *testing.T) {
	ca, err := lab.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, content := range map[string]string{"ca.pem": string(ca.CertPEM()), "am-password": "am-pass-123\n", "hook-token": "hook-token-456\n", "hook-secret": "0123456789abcdef0123"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := ca.WriteKeyPair(filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key"), "otpprobe-agent"); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 2)
	serverTLS, err := ca.ServerTLS("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	serverTLS.ClientCAs, serverTLS.ClientAuth = ca.Pool(), tls.RequireAndVerifyClientCert
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := ""
		if len(r.TLS.PeerCertificates) > 0 {
			client = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		got <- r.URL.Path + " " + client + " " + r.Header.Get("Authorization")
	}))
	srv.TLS = serverTLS
	srv.StartTLS()
	defer srv.Close()

	cfg, err := targets.Parse([]byte(`
senders:
  - {name: m365, host: smtp.example.com, auth: {username: u, password: p}, from: otp@example.com}
mailboxes:
  - {name: gmail, provider: gmail, address: seed@gmail.example, auth: {username: u, password: p}}
probes:
  - {name: otp, schedule: "@every 1m", senders: [m365], mailboxes: [gmail]}
alerts:
  alertmanagers:
    - name: am
      url: `+srv.URL+`/am
      ca_file: ca.pem
      cert_file: client.pem
      key_file: client.key
      basic_auth: {username: otpprobe, password_file: am-password}
  webhooks:
    - name: hook
      url: `+srv.URL+`/hook
      ca_file: ca.pem
      cert_file: client.pem
      key_file: client.key
      bearer_token_file: hook-token
      secret_file: hook-secret
`), dir)
	if err != nil {
		t.Fatal(err)
	}
	am, err := alert.NewAlertmanager(cfg.Alerts.Alertmanagers[0])
	if err != nil {
		t.Fatal(err)
	}
	hook, err := alert.NewWebhook(cfg.Alerts.Webhooks[0])
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := am.Notify(ctx, alert.KindAlert, []byte(`{"alert": {"name": "X", "labels": {}, "status": "firing"}}`)); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != "/am/api/v2/alerts otpprobe-agent Basic b3RwcHJvYmU6YW0tcGFzcy0xMjM=" {
		t.Errorf("alertmanager request: %q", g)
	}
	if err := hook.Notify(ctx, alert.KindAlert, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != "/hook otpprobe-agent Bearer hook-token-456" {
		t.Errorf("webhook request: %q", g)
	}
}
