package token

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"golang.org/x/oauth2"

	"github.com/otpprobe/otpprobe/targets"
)

// Login obtains a user's first refresh token, with a person signing in
// in a browser, and stores it in the account's refresh_token_file
// (atomically, 0600) for the refresh_token flow to use from then on.
type Login struct {
	OAuth2 *targets.OAuth2
	Scopes []string
	// User is the account that should sign in (login_hint).
	User string
	// Show tells the person what to do; it is called once, before the
	// wait for them begins.
	Show func(Instructions)
}

// Instructions are what the person signing in must do: open URL and, in
// the device-code flow, enter Code.
type Instructions struct {
	URL     string
	Code    string // device code flow only
	Message string // the identity platform's own sentence, when it gave one
	Expires time.Time
}

// Result is what a login obtained (never the tokens themselves).
type Result struct {
	File    string    // where the refresh token was stored
	Expires time.Time // the first access token's expiry
}

// Device runs the device-code flow (RFC 8628; Microsoft's recommended
// sign-in for a headless prober): the person opens the verification URL
// on any device and enters the code; Device polls until they did, the
// code expired, or ctx ended.
func (l *Login) Device(ctx context.Context) (*Result, error) {
	conf, ctx, err := l.config(ctx)
	if err != nil {
		return nil, err
	}
	if conf.Endpoint.DeviceAuthURL == "" {
		return nil, errors.New("this provider has no device-code endpoint configured; use the loopback flow")
	}
	da, err := conf.DeviceAuth(ctx, l.hint()...)
	if err != nil {
		return nil, fromOAuth2(err)
	}
	in := Instructions{URL: da.VerificationURI, Code: da.UserCode, Expires: da.Expiry}
	if da.VerificationURIComplete != "" {
		in.URL = da.VerificationURIComplete
	}
	l.Show(in)
	tok, err := conf.DeviceAccessToken(ctx, da)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("nobody signed in before the code expired or the wait was cut off: %w", context.Cause(ctx))
		}
		return nil, fromOAuth2(err)
	}
	return l.store(tok)
}

// Loopback runs the authorization-code flow with PKCE and a redirect to
// a listener on listen (127.0.0.1:0 for any free port), the flow Google
// allows for installed apps since it retired the out-of-band ("copy this
// code") flow: the person opens the URL in a browser on this machine (or
// through an SSH tunnel to the port), signs in, and the browser is sent
// back to the listener with the code.
func (l *Login) Loopback(ctx context.Context, listen string) (*Result, error) {
	conf, ctx, err := l.config(ctx)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("loopback listener: %w", err)
	}
	defer ln.Close()
	conf.RedirectURL = "http://" + ln.Addr().String() + "/"
	state, verifier := randomState(), oauth2.GenerateVerifier()
	opts := append(l.hint(), oauth2.S256ChallengeOption(verifier), oauth2.AccessTypeOffline)
	if l.OAuth2.Provider == targets.OAuth2Google {
		opts = append(opts, oauth2.ApprovalForce) // Google returns a refresh token only with consent
	}
	l.Show(Instructions{URL: conf.AuthCodeURL(state, opts...)})

	type reply struct{ code, err string }
	got := make(chan reply, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("state") != state {
			http.Error(w, "unexpected request (state does not match)", http.StatusBadRequest)
			return
		}
		rep := reply{code: q.Get("code"), err: q.Get("error")}
		if d := q.Get("error_description"); d != "" {
			rep.err += ": " + d
		}
		if rep.code == "" && rep.err == "" {
			rep.err = "no code in the redirect"
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if rep.err != "" {
			fmt.Fprintln(w, "Sign-in failed: "+rep.err+". You may close this window.")
		} else {
			fmt.Fprintln(w, "Signed in: otpprobe has what it needs. You may close this window.")
		}
		select {
		case got <- rep:
		default:
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()
	var rep reply
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("nobody signed in before the wait was cut off: %w", context.Cause(ctx))
	case rep = <-got:
	}
	if rep.err != "" {
		return nil, fmt.Errorf("sign-in refused: %s", rep.err)
	}
	tok, err := conf.Exchange(ctx, rep.code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fromOAuth2(err)
	}
	return l.store(tok)
}

// config is the account's x/oauth2 configuration and a context carrying
// its HTTP client (ca_file).
func (l *Login) config(ctx context.Context) (*oauth2.Config, context.Context, error) {
	if l.OAuth2.RefreshTokenFile == "" {
		return nil, nil, errors.New("auth.oauth2.refresh_token_file is not set: auth login stores the refresh token there")
	}
	hc, err := httpClient(l.OAuth2)
	if err != nil {
		return nil, nil, err
	}
	return OAuth2Config(l.OAuth2, l.Scopes), context.WithValue(ctx, oauth2.HTTPClient, hc), nil
}

func (l *Login) hint() []oauth2.AuthCodeOption {
	if l.User == "" {
		return nil
	}
	return []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("login_hint", l.User)}
}

func (l *Login) store(tok *oauth2.Token) (*Result, error) {
	if tok.RefreshToken == "" {
		return nil, errors.New("the identity platform returned no refresh token: the scopes must include offline_access (Microsoft) or the consent must be offline (Google)")
	}
	if err := WriteSecretFile(l.OAuth2.RefreshTokenFile, tok.RefreshToken); err != nil {
		return nil, fmt.Errorf("storing the refresh token: %w", err)
	}
	return &Result{File: l.OAuth2.RefreshTokenFile, Expires: tok.Expiry}, nil
}

func randomState() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
