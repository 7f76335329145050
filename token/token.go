// Package token gets OAuth2 access tokens for mail: Microsoft Entra ID
// client credentials (secret or certificate) through Microsoft's MSAL, and
// refresh-token grants for Outlook.com and Google through x/oauth2 with the
// rotated refresh token written back. Tokens are cached in memory, renewed
// before they expire, and one Source serves every path (SMTP, IMAP, Graph)
// of an account. Tokens and secrets never appear in its errors.
package token

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/otpprobe/otpprobe/targets"
)

// Source returns a valid access token, from its cache while that is
// fresh. It is safe for concurrent use.
type Source interface {
	Token(ctx context.Context) (string, error)
}

// renewBefore is how long before expiry a cached token is replaced: a
// submission or an IMAP login must never start with a token about to die.
const renewBefore = 5 * time.Minute

// httpTimeout bounds one call to a token endpoint.
const httpTimeout = 30 * time.Second

// Sources hands out one Source per account configuration, so the SMTP
// and IMAP paths of an account share tokens. The zero value is ready.
type Sources struct {
	mu sync.Mutex
	m  map[string]Source
}

// Shared is the process's Sources: the engine, the watchers and
// `otpprobe auth test` get their tokens from it.
var Shared = &Sources{}

// For returns the Source of o for mail over SMTP/IMAP or, with graph, for
// Microsoft Graph (another audience, so another token).
func (s *Sources) For(o *targets.OAuth2, graph bool) (Source, error) {
	scopes := o.ScopesFor(graph)
	key := sourceKey(o, scopes)
	s.mu.Lock()
	defer s.mu.Unlock()
	if src, ok := s.m[key]; ok {
		return src, nil
	}
	src, err := New(o, scopes)
	if err != nil {
		return nil, err
	}
	if s.m == nil {
		s.m = map[string]Source{}
	}
	s.m[key] = src
	return src, nil
}

// sourceKey identifies an account's source; the secret is hashed in so a
// reload with a new secret gets a new source.
func sourceKey(o *targets.OAuth2, scopes []string) string {
	h := sha256.Sum256([]byte(o.ClientSecret.Reveal()))
	return strings.Join([]string{o.Provider, o.Flow, o.AuthorityURL(), o.TokenURL, o.ClientID, o.CertificateFile,
		o.RefreshTokenFile, o.CAFile, strings.Join(scopes, " "), hex.EncodeToString(h[:8])}, "|")
}

// New builds the Source for o asking for scopes.
func New(o *targets.OAuth2, scopes []string) (Source, error) {
	hc, err := httpClient(o)
	if err != nil {
		return nil, err
	}
	switch {
	case o.Flow == targets.FlowClientCredentials && o.Provider == targets.OAuth2Microsoft:
		return newMicrosoftApp(o, scopes, hc)
	case o.Flow == targets.FlowRefreshToken:
		return newRefresher(o, scopes, hc), nil
	}
	return nil, fmt.Errorf("oauth2: flow %s is not supported for %s", o.Flow, o.Provider)
}

// httpClient trusts o's ca_file when set (a private token endpoint, the
// lab) and the system roots otherwise.
func httpClient(o *targets.OAuth2) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if o.CAFile != "" {
		roots, err := targets.LoadCAFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("oauth2.ca_file: %w", err)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: httpTimeout}, nil
}
