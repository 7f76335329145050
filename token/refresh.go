package token

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/otpprobe/otpprobe/targets"
)

// refresher turns a user's refresh token into access tokens (Outlook.com,
// Google). Providers rotate refresh tokens: a new one is written back to
// the file at once, atomically and 0600, before the access token is used.
type refresher struct {
	conf *oauth2.Config
	file string
	hc   *http.Client

	mu      sync.Mutex
	current *oauth2.Token
}

func newRefresher(o *targets.OAuth2, scopes []string, hc *http.Client) *refresher {
	return &refresher{conf: OAuth2Config(o, scopes), file: o.RefreshTokenFile, hc: hc}
}

// OAuth2Config is o's x/oauth2 configuration: Microsoft's v2.0 endpoints
// under the authority, or Google's.
func OAuth2Config(o *targets.OAuth2, scopes []string) *oauth2.Config {
	c := &oauth2.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret.Reveal(), Scopes: scopes}
	switch o.Provider {
	case targets.OAuth2Google:
		c.Endpoint = google.Endpoint
		if o.TokenURL != "" {
			c.Endpoint.TokenURL = o.TokenURL
		}
	default:
		base := o.AuthorityURL() + "/oauth2/v2.0"
		c.Endpoint = oauth2.Endpoint{AuthURL: base + "/authorize", TokenURL: base + "/token",
			DeviceAuthURL: base + "/devicecode", AuthStyle: oauth2.AuthStyleInParams}
	}
	return c
}

func (r *refresher) Token(ctx context.Context) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.current != nil && r.current.AccessToken != "" && time.Until(r.current.Expiry) > renewBefore {
		return r.current.AccessToken, nil
	}
	old, err := targets.ReadTokenFile(r.file) // bounded, trimmed; errors name the file only
	if err != nil {
		return "", fmt.Errorf("oauth2.refresh_token_file: %w (run otpprobe auth login)", err)
	}
	if old == "" {
		return "", fmt.Errorf("oauth2.refresh_token_file %s is empty (run otpprobe auth login)", r.file)
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, r.hc)
	tok, err := r.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: old}).Token()
	if err != nil {
		return "", fromOAuth2(err)
	}
	if tok.RefreshToken != "" && tok.RefreshToken != old {
		if err := WriteSecretFile(r.file, tok.RefreshToken); err != nil {
			return "", fmt.Errorf("oauth2.refresh_token_file: saving the rotated refresh token: %w", err)
		}
	}
	r.current = tok
	return tok.AccessToken, nil
}

// WriteSecretFile replaces path with content atomically (a temporary file
// in the same directory, 0600, renamed over it): a crash leaves the old
// token or the new one, never half of one.
func WriteSecretFile(path, content string) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(content + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
