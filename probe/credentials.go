package probe

import (
	"context"

	"github.com/otpprobe/otpprobe/targets"
	"github.com/otpprobe/otpprobe/token"
)

// credentials adapts a config's auth block to the clients' callback. An
// oauth2 token source is shared by every path of the account (token.Shared)
// and asked at each use; it answers from its cache while the token is fresh.
func credentials(a targets.Auth) Credentials {
	return func(ctx context.Context) (string, string, error) {
		if a.OAuth2 != nil {
			src, err := token.Shared.For(a.OAuth2, false)
			if err != nil {
				return "", "", err
			}
			tok, err := src.Token(ctx)
			return a.Username, tok, err
		}
		secret, err := a.Secret(ctx)
		return a.Username, secret, err
	}
}

// CredentialsFor returns the callback the SMTP and IMAP clients ask for a
// username and secret: `otpprobe auth test` logs in with it.
func CredentialsFor(a targets.Auth) Credentials { return credentials(a) }
