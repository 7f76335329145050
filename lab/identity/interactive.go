package identity

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// deviceCodeLifetime is how long a person has to approve a device code
// (Entra ID: 15 minutes).
const deviceCodeLifetime = 15 * time.Minute

// device is a pending device-code sign-in.
type device struct {
	user     User // Address is the login_hint until someone approves
	userCode string
	approved bool
	expires  time.Time
	polls    int // token requests answered authorization_pending
}

// deviceCode starts the device-code flow (RFC 8628): the client shows the
// person the verification URI and the user code, and polls the token
// endpoint until the person approved it at /devicelogin.
func (s *Server) deviceCode(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "AADSTS90014: malformed request", 90014)
		return
	}
	tenant := r.PathValue("tenant")
	dc, code := randomHex(16), strings.ToUpper(randomHex(4))
	s.mu.Lock()
	s.devices[dc] = &device{user: User{Tenant: tenant, ClientID: r.PostForm.Get("client_id"), Address: r.PostForm.Get("login_hint")},
		userCode: code, expires: time.Now().Add(deviceCodeLifetime)}
	s.mu.Unlock()
	uri := s.Authority() + "/devicelogin"
	writeJSON(w, http.StatusOK, map[string]any{"device_code": dc, "user_code": code, "verification_uri": uri,
		"expires_in": int(deviceCodeLifetime.Seconds()), "interval": 1,
		"message": fmt.Sprintf("To sign in, use a web browser to open the page %s and enter the code %s to authenticate.", uri, code)})
}

// deviceLoginPage is what the person's browser shows at the verification
// URI: a form for the code.
func (s *Server) deviceLoginPage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, `<!doctype html><title>Sign in</title><form method="post">Code <input name="user_code"> Account <input name="user"> <button>Sign in</button></form>`)
}

// deviceLogin is the person entering the code and signing in (as user,
// default the client's login_hint): the client's next poll gets tokens.
func (s *Server) deviceLogin(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "malformed form", http.StatusBadRequest)
		return
	}
	code := strings.ToUpper(strings.TrimSpace(r.PostForm.Get("user_code")))
	if err := s.ApproveDevice(code, r.PostForm.Get("user")); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "You have signed in to the application on your device. You may now close this window.")
}

// ApproveDevice signs user in for the pending device code userCode ("" for
// the client's login_hint).
func (s *Server) ApproveDevice(userCode, user string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.devices {
		if d.userCode != userCode || time.Now().After(d.expires) {
			continue
		}
		if user != "" {
			d.user.Address = user
		}
		if d.user.Address == "" {
			return fmt.Errorf("code %s: name the account that signs in", userCode)
		}
		d.approved = true
		return nil
	}
	return fmt.Errorf("code %s is unknown or expired", userCode)
}

// PendingPolls is how many times the client polled the pending device
// code userCode before anyone approved it.
func (s *Server) PendingPolls(userCode string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.devices {
		if d.userCode == userCode {
			return d.polls
		}
	}
	return 0
}

func (s *Server) deviceToken(w http.ResponseWriter, r *http.Request, tenant string) {
	dc := r.PostForm.Get("device_code")
	s.mu.Lock()
	var d device // a copy: ApproveDevice changes the stored one
	p, ok := s.devices[dc]
	if ok {
		d = *p
		if d.approved || time.Now().After(d.expires) {
			delete(s.devices, dc)
		} else {
			p.polls++ // answered authorization_pending below
		}
	}
	s.mu.Unlock()
	switch {
	case !ok || d.user.Tenant != tenant:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "AADSTS70000: The provided value for the input parameter 'device_code' is not valid.", 70000)
	case time.Now().After(d.expires):
		oauthError(w, http.StatusBadRequest, "expired_token", "AADSTS70019: Verification code expired.", 70019)
	case !d.approved:
		oauthError(w, http.StatusBadRequest, "authorization_pending", "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending. Continue polling.", 70016)
	default:
		s.grantUser(w, d.user, r.PostForm.Get("scope"))
	}
}

// authCode is an issued authorization code: for whom, to which redirect,
// bound to the PKCE challenge.
type authCode struct {
	user        User
	redirectURI string
	challenge   string // S256
	expires     time.Time
}

// authorize is the authorization endpoint of the authorization-code flow.
// The lab's person signs in at once as login_hint; like Entra ID for
// public clients it takes only loopback redirects (any port) and PKCE S256.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || redirect.Scheme != "http" || (redirect.Hostname() != "127.0.0.1" && redirect.Hostname() != "localhost") {
		http.Error(w, "AADSTS50011: The redirect URI specified in the request does not match the redirect URIs configured for the application.", http.StatusBadRequest)
		return
	}
	back := redirect.Query()
	back.Set("state", q.Get("state"))
	switch {
	case q.Get("response_type") != "code":
		back.Set("error", "unsupported_response_type")
	case q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256":
		back.Set("error", "invalid_request")
		back.Set("error_description", "AADSTS9002325: Proof Key for Code Exchange is required for cross-origin authorization code redemption.")
	case q.Get("login_hint") == "":
		back.Set("error", "login_required")
	default:
		code := "lab-code-" + randomHex(16)
		s.mu.Lock()
		s.codes[code] = authCode{user: User{Tenant: r.PathValue("tenant"), ClientID: q.Get("client_id"), Address: q.Get("login_hint")},
			redirectURI: q.Get("redirect_uri"), challenge: q.Get("code_challenge"), expires: time.Now().Add(10 * time.Minute)}
		s.mu.Unlock()
		back.Set("code", code)
	}
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// codeToken redeems an authorization code: once, by the same client and
// redirect URI, with the verifier of the PKCE challenge.
func (s *Server) codeToken(w http.ResponseWriter, r *http.Request, tenant string) {
	f := r.PostForm
	s.mu.Lock()
	c, ok := s.codes[f.Get("code")]
	delete(s.codes, f.Get("code"))
	s.mu.Unlock()
	sum := sha256.Sum256([]byte(f.Get("code_verifier")))
	switch {
	case !ok || time.Now().After(c.expires) || c.user.Tenant != tenant || c.user.ClientID != f.Get("client_id") || c.redirectURI != f.Get("redirect_uri"):
		oauthError(w, http.StatusBadRequest, "invalid_grant", "AADSTS70008: The provided authorization code or refresh token has expired due to inactivity.", 70008)
	case base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the authorization request.", 501481)
	default:
		s.grantUser(w, c.user, f.Get("scope"))
	}
}
