package lab

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/otpprobe/otpprobe/lab/graph"
	"github.com/otpprobe/otpprobe/lab/identity"
)

// startIdentity runs the tenant's identity platform and registers the
// prober's app with a client secret and a certificate (written, with its
// key, to the world's directory).
func (w *World) startIdentity() error {
	tlsCfg, err := w.ca.ServerTLS(IdentityHost, IdentityIP)
	if err != nil {
		return err
	}
	w.identity, err = identity.Start(identity.Config{Addr: net.JoinHostPort(IdentityIP, "0"), Host: IdentityIP, TLS: tlsCfg,
		Logger: w.log.With("component", "identity")})
	if err != nil {
		return fmt.Errorf("lab identity: %w", err)
	}
	cert, certFile, err := w.appCertificate()
	if err != nil {
		return err
	}
	w.appSecret, w.appCertFile = randomSecret(), certFile
	w.identity.RegisterApp(identity.App{Tenant: TenantID, ClientID: M365ClientID, Secret: w.appSecret, Cert: cert,
		Mailboxes: []string{SenderUsername}})
	w.outlookRT = w.identity.IssueRefreshToken(identity.User{Tenant: ConsumersTenant, ClientID: OutlookClientID,
		Address: SeedLocalPart + "@" + ProviderOutlook + ".test"})
	return nil
}

// verifyOutlookUser checks an IMAP XOAUTH2 login at the outlook seed: a
// delegated token for that user with IMAP access.
func (w *World) verifyOutlookUser(user, token string) error {
	c, err := w.identity.Verify(token, identity.AudienceOutlook, identity.ScopeIMAPUser)
	if err != nil {
		return err
	}
	if c.UPN != user && c.UPN != user+"@"+ProviderOutlook+".test" {
		return &identity.VerifyError{Status: 401, Reason: "token is for another user"}
	}
	return nil
}

// appCertificate makes the app's self-signed RSA certificate credential
// (what `New-SelfSignedCertificate` gives an admin) and writes it with its
// key as one PEM file.
func (w *World) appCertificate() (*x509.Certificate, string, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, "", err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "otpprobe"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, "", err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, "", err
	}
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
	path := filepath.Join(filepath.Dir(w.caFile), "m365-app.pem")
	return cert, path, os.WriteFile(path, data, 0o600)
}

// startGraph runs the Graph-like sendMail endpoint in front of the m365
// submission pipeline.
func (w *World) startGraph() error {
	tlsCfg, err := w.ca.ServerTLS(GraphHost, GraphIP)
	if err != nil {
		return err
	}
	m365 := w.senders[SenderM365]
	w.graph, err = graph.Start(graph.Config{Addr: net.JoinHostPort(GraphIP, "0"), Host: GraphIP, TLS: tlsCfg,
		Verify: func(tok string) (*identity.Claims, error) {
			return w.identity.Verify(tok, identity.AudienceGraph, identity.RoleMailSend)
		},
		Users: []string{SenderUsername}, Submit: m365.SubmitMIME, Logger: w.log.With("component", "graph")})
	if err != nil {
		return fmt.Errorf("lab graph: %w", err)
	}
	return nil
}

// verifyOutlookToken checks an XOAUTH2 token for SMTP submission.
func (w *World) verifyOutlookToken(permission string) func(user, token string) error {
	return func(user, token string) error {
		c, err := w.identity.Verify(token, identity.AudienceOutlook, permission)
		if err != nil {
			return err
		}
		if c.UPN != "" && c.UPN != user {
			return &identity.VerifyError{Status: 401, Reason: "token is for another user"}
		}
		return nil
	}
}

// Identity is the world's identity platform.
func (w *World) Identity() *identity.Server { return w.identity }

func (w *World) setGraphFault(f graph.Faults) error {
	w.graph.SetFaults(f)
	return nil
}

func (w *World) setIdentityFault(change func(*identity.Faults)) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	change(&w.identityFaults)
	w.identity.SetFaults(w.identityFaults)
	return nil
}
