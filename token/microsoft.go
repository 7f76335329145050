package token

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"

	"github.com/otpprobe/otpprobe/targets"
)

// microsoftApp is an Entra ID app's own identity (client credentials),
// through MSAL: a client secret or a certificate assertion. MSAL caches
// the token and renews it before it expires.
type microsoftApp struct {
	client confidential.Client
	scopes []string
	mu     sync.Mutex // one acquisition at a time per app
}

func newMicrosoftApp(o *targets.OAuth2, scopes []string, hc *http.Client) (*microsoftApp, error) {
	var cred confidential.Credential
	var err error
	if o.CertificateFile != "" {
		pem, rerr := os.ReadFile(o.CertificateFile)
		if rerr != nil {
			return nil, fmt.Errorf("oauth2.certificate_file: %w", rerr)
		}
		certs, key, perr := confidential.CertFromPEM(pem, "")
		if perr != nil {
			return nil, fmt.Errorf("oauth2.certificate_file %s: %w", o.CertificateFile, perr)
		}
		cred, err = confidential.NewCredFromCert(certs, key)
	} else {
		cred, err = confidential.NewCredFromSecret(o.ClientSecret.Reveal())
	}
	if err != nil {
		return nil, fmt.Errorf("oauth2 credential: %w", err)
	}
	// Instance discovery asks login.microsoftonline.com about the
	// authority; a national cloud or the lab answers its own metadata.
	c, err := confidential.New(o.AuthorityURL(), o.ClientID, cred,
		confidential.WithHTTPClient(hc), confidential.WithInstanceDiscovery(false))
	if err != nil {
		return nil, fmt.Errorf("oauth2 authority %s: %w", o.AuthorityURL(), err)
	}
	return &microsoftApp{client: c, scopes: scopes}, nil
}

func (m *microsoftApp) Token(ctx context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, err := m.client.AcquireTokenSilent(ctx, m.scopes); err == nil && r.AccessToken != "" {
		return r.AccessToken, nil
	}
	r, err := m.client.AcquireTokenByCredential(ctx, m.scopes)
	if err != nil {
		return "", fromMSAL(err)
	}
	return r.AccessToken, nil
}
