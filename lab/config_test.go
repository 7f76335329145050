package lab_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/targets"
)

var update = flag.Bool("update", false, "rewrite configs/lab.yaml from the generator")

// configs/lab.yaml is what `otpprobe lab` generates, with the ports of one
// run and ./data/lab for its directory; this test keeps it in step with the
// generator and proves the generated config loads.
func TestGeneratedConfigGolden(t *testing.T) {
	dir := t.TempDir()
	ep := &lab.Endpoints{DNS: "127.0.0.1:40053", CAFile: filepath.Join(dir, "lab-ca.pem"), Senders: []lab.Endpoint{
		{Name: "m365", Host: lab.M365IP, Port: 40587, TLS: "starttls", Username: lab.SenderUsername, Password: "x", From: lab.OTPFromHeader, EnvelopeFrom: lab.BounceAddress,
			OAuth2: &lab.OAuth2App{Authority: "https://" + lab.IdentityIP + ":40443", Tenant: lab.TenantID, ClientID: lab.M365ClientID, ClientSecret: "s", GraphURL: "https://" + lab.GraphIP + ":40444"}},
		{Name: "backup", Host: lab.BackupIP, Port: 41587, TLS: "starttls", Username: lab.SenderUsername, Password: "x", From: lab.OTPFromHeader,
			EnvelopeFrom: lab.RelayBounceAddress, Bounces: "relay-bounces"},
	}}
	for i, p := range []struct{ name, ip, authserv, junk, trash string }{
		{"gmail", lab.GmailIP, "mx.google.com", "[Gmail]/Spam", "[Gmail]/Trash"},
		{"yahoo", lab.YahooIP, "atlas-production.v2-mail-prod1-gq1.omega.yahoo.com", "Bulk", "Trash"},
		{"outlook", lab.OutlookIP, "none", "Junk Email", "Deleted Items"},
	} {
		ep.Mailboxes = append(ep.Mailboxes, lab.Endpoint{Name: p.name, Provider: p.name, Address: "seed@" + p.name + ".test",
			Host: p.ip, Port: 40143 + i, TLS: "starttls", Username: "seed", Password: "x", AuthservID: p.authserv, Junk: p.junk, Trash: p.trash})
		if p.name == "outlook" {
			ep.Mailboxes[i].OAuth2 = &lab.OAuth2App{Authority: "https://" + lab.IdentityIP + ":40443", Tenant: lab.ConsumersTenant,
				ClientID: lab.OutlookClientID, RefreshToken: "rt"}
		}
	}
	ep.Bounces = &lab.Endpoint{Name: "bounces", Provider: "generic", Address: lab.BounceAddress, Host: lab.BankMXIP, Port: 40150, TLS: "starttls", Username: "bounces", Password: "x"}
	ep.RelayBounces = &lab.Endpoint{Name: "relay-bounces", Provider: "generic", Address: lab.RelayBounceAddress, Host: lab.BankMXIP, Port: 40150, TLS: "starttls", Username: "relay-bounces", Password: "x"}
	if err := os.WriteFile(ep.CAFile, testCAPEM(t), 0o644); err != nil {
		t.Fatal(err)
	}
	path, err := ep.WriteConfig(lab.ConfigOptions{Dir: dir, Generated: time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := targets.Load(path); err != nil {
		t.Fatalf("the generated config does not load: %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.ReplaceAll(string(data), dir, "./data/lab")
	golden := filepath.Join("..", "configs", "lab.yaml")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test ./lab -run TestGeneratedConfigGolden -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("configs/lab.yaml is out of date; run: go test ./lab -run TestGeneratedConfigGolden -update\n--- got ---\n%s", got)
	}
}

func testCAPEM(t *testing.T) []byte {
	ca, err := lab.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	return ca.CertPEM()
}
