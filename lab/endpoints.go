package lab

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Endpoints is how a client reaches a running world: the JSON written by
// `otpprobe lab serve --endpoints-file`. The interop scripts (Dovecot and
// Postfix) write the same shape, so one config generator serves both.
type Endpoints struct {
	DNS       string     `json:"dns"`     // "127.0.0.1:P", UDP and TCP
	Control   string     `json:"control"` // "http://127.0.0.1:P"
	CAFile    string     `json:"ca_file"` // PEM of the private CA every TLS server uses
	Senders   []Endpoint `json:"senders"`
	Mailboxes []Endpoint `json:"mailboxes"`
	Bounces   *Endpoint  `json:"bounces,omitempty"` // the default bounce mailbox (m365's)
	// RelayBounces is the backup relay's own bounce mailbox: each sender
	// returns DSNs to its own envelope sender, as in real deployments.
	RelayBounces *Endpoint `json:"relay_bounces,omitempty"`
	// Verifier is the real verifier chain of scripts/testservers.sh
	// (OpenDKIM signing, Postfix + rspamd receiving); nil for a lab world.
	Verifier *Verifier `json:"verifier,omitempty"`
}

// Verifier describes the real verifier chain: mail submitted at
// Senders[0] from any *.Domain is signed with Selector (d= the From
// domain) and relayed from SourceIP to a receiving Postfix whose rspamd
// milter resolves every name at DNS, a server the test runs and fills
// (DKIMTXT is the selector's TXT value). Mail for Mailbox is delivered
// there; DSNs to bounces@<anything>.Domain land in Bounces.
type Verifier struct {
	DNS        string   `json:"dns"`
	Domain     string   `json:"domain"`
	Selector   string   `json:"selector"`
	DKIMTXT    string   `json:"dkim_txt"`
	SourceIP   string   `json:"source_ip"`
	AuthservID string   `json:"authserv_id"` // the receiving Postfix's myhostname
	Mailbox    Endpoint `json:"mailbox"`
	Bounces    Endpoint `json:"bounces"`
}

// Endpoint is one submission service or one IMAP mailbox.
type Endpoint struct {
	Name     string `json:"name"`
	Provider string `json:"provider,omitempty"` // mailboxes: gmail, yahoo, outlook, bank, generic
	Address  string `json:"address,omitempty"`  // mailboxes: the seed address
	From     string `json:"from,omitempty"`     // senders: header From
	// EnvelopeFrom is the senders' MAIL FROM: the bounce address, so DSNs
	// land in the bounces mailbox.
	EnvelopeFrom string `json:"envelope_from,omitempty"`
	// Bounces names the mailbox (Endpoints.Bounces or RelayBounces) that
	// receives a sender's DSNs; "" for the default.
	Bounces    string `json:"bounces,omitempty"`
	Host       string `json:"host"`
	Port       int    `json:"port"`
	TLS        string `json:"tls"` // starttls | tls | none
	Username   string `json:"username"`
	Password   string `json:"password"`
	AuthservID string `json:"authserv_id,omitempty"` // mailboxes: whose Authentication-Results to trust
	Junk       string `json:"junk,omitempty"`        // mailboxes: the junk folder's name
	Trash      string `json:"trash,omitempty"`       // mailboxes: where cleanup moves canaries
	// OAuth2 is the app registration a sender may log in with instead of
	// its password (the lab's m365 tenant).
	OAuth2 *OAuth2App `json:"oauth2,omitempty"`
}

// OAuth2App is an app registration at the lab's identity platform.
type OAuth2App struct {
	Authority    string `json:"authority"` // https://host:port, without the tenant
	Tenant       string `json:"tenant"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret,omitempty"`
	CertFile     string `json:"certificate_file,omitempty"` // PEM certificate and key, the other credential
	GraphURL     string `json:"graph_url,omitempty"`
	// RefreshToken is a user's refresh token (the outlook seed), as
	// `otpprobe auth login` would have stored it.
	RefreshToken string `json:"refresh_token,omitempty"`
}

// WriteFile writes e as JSON to path atomically (temp file + rename), so a
// reader polling for the file never sees half of it.
func (e *Endpoints) WriteFile(path string) error {
	data, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".endpoints-*.json")
	if err != nil {
		return fmt.Errorf("endpoints file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("endpoints file: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil { // it holds lab passwords
		tmp.Close()
		return fmt.Errorf("endpoints file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("endpoints file: %w", err)
	}
	return os.Rename(tmp.Name(), path)
}

// LoadEndpoints reads an endpoints file.
func LoadEndpoints(path string) (*Endpoints, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("endpoints file: %w", err)
	}
	var e Endpoints
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("endpoints file %s: %w", path, err)
	}
	return &e, nil
}
