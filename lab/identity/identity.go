// Package identity is the lab's Entra-ID-like identity platform: an
// OAuth2 token endpoint under https://<host>/<tenant>/ with OpenID
// metadata (what MSAL reads), client credentials with a client secret or
// a certificate assertion, the refresh-token grant with rotation, the
// device-code flow (a person approves the code at /devicelogin) and the
// authorization-code flow with PKCE to a loopback redirect. It issues RS256 JWT access tokens that the lab's mail
// services verify (audience, expiry, permission) with Verify. Faults turn
// it into a tenant whose secret expired or whose user revoked consent.
package identity

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Audiences (resources) and the permissions the lab grants.
const (
	AudienceOutlook = "https://outlook.office365.com"
	AudienceGraph   = "https://graph.microsoft.com"

	RoleSMTPSend  = "SMTP.SendAsApp"   // app-only SMTP AUTH
	RoleIMAP      = "IMAP.AccessAsApp" // app-only IMAP
	RoleMailSend  = "Mail.Send"        // Graph sendMail
	ScopeSMTPUser = "SMTP.Send"        // delegated
	ScopeIMAPUser = "IMAP.AccessAsUser.All"
)

// TokenLifetime is how long an access token lives (Entra ID: 60-90 min).
const TokenLifetime = time.Hour

// Config starts a Server.
type Config struct {
	Addr   string      // listen address, e.g. 127.0.0.50:0
	Host   string      // the name in URLs and the certificate
	TLS    *tls.Config // server certificate
	Logger *slog.Logger
}

// App is a registered confidential client (an app registration).
type App struct {
	Tenant, ClientID string
	Secret           string            // client secret; "" when only Cert is registered
	Cert             *x509.Certificate // certificate credential, may be nil
	Mailboxes        []string          // mailboxes granted to the app's service principal
}

// User is a consumer account with a public client's refresh token.
type User struct {
	Tenant, ClientID, Address string
}

// Faults make the identity platform fail the way Entra ID does.
type Faults struct {
	SecretExpired  bool // client secrets answer invalid_client AADSTS7000222
	RefreshRevoked bool // refresh tokens answer invalid_grant AADSTS70008
}

// Claims are an access token's claims.
type Claims struct {
	Issuer   string   `json:"iss"`
	Audience string   `json:"aud"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	Tenant   string   `json:"tid"`
	AppID    string   `json:"appid"`
	Roles    []string `json:"roles,omitempty"` // app-only permissions
	Scope    string   `json:"scp,omitempty"`   // delegated permissions, space-separated
	UPN      string   `json:"upn,omitempty"`   // the user of a delegated token
}

// Server is a running identity platform.
type Server struct {
	cfg  Config
	log  *slog.Logger
	key  *rsa.PrivateKey
	kid  string
	ln   net.Listener
	http *http.Server

	mu      sync.Mutex
	apps    map[string]App      // by client ID
	users   map[string]User     // by refresh token
	devices map[string]*device  // by device code
	codes   map[string]authCode // authorization codes by code
	faults  Faults
	issued  []string // every access and refresh token handed out
}

// Start listens on cfg.Addr and serves until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, key: key, kid: randomHex(8), ln: ln,
		apps: map[string]App{}, users: map[string]User{}, devices: map[string]*device{}, codes: map[string]authCode{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", s.metadata)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", s.token)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/devicecode", s.deviceCode)
	mux.HandleFunc("GET /devicelogin", s.deviceLoginPage)
	mux.HandleFunc("POST /devicelogin", s.deviceLogin)
	mux.HandleFunc("GET /{tenant}/oauth2/v2.0/authorize", s.authorize)
	s.http = &http.Server{Handler: mux, TLSConfig: cfg.TLS, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)}
	go s.http.ServeTLS(ln, "", "")
	return s, nil
}

// Authority is the authority URL clients use: https://host:port (append
// "/<tenant>").
func (s *Server) Authority() string {
	_, port, _ := net.SplitHostPort(s.ln.Addr().String())
	return "https://" + net.JoinHostPort(s.cfg.Host, port)
}

// Close stops the server.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.http.Shutdown(ctx)
}

// RegisterApp adds or replaces an app registration.
func (s *Server) RegisterApp(a App) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apps[a.ClientID] = a
}

// IssueRefreshToken signs u in (as `otpprobe auth login` would have) and
// returns the refresh token.
func (s *Server) IssueRefreshToken(u User) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := "lab-rt-" + randomHex(24)
	s.users[rt] = u
	s.issued = append(s.issued, rt)
	return rt
}

// SetFaults changes the faults in force.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Issued returns every access and refresh token issued so far (tests grep
// logs and stores for them).
func (s *Server) Issued() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.issued...)
}

func (s *Server) issuer(tenant string) string { return s.Authority() + "/" + tenant + "/v2.0" }

func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	base := s.Authority() + "/" + tenant + "/oauth2/v2.0"
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.Authority() + "/{tenant}/v2.0",
		"authorization_endpoint":                base + "/authorize",
		"token_endpoint":                        base + "/token",
		"device_authorization_endpoint":         base + "/devicecode",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"tenant_region_scope":                   "EU",
	})
}

// oauthError writes an OAuth2 error response in Entra ID's shape.
func oauthError(w http.ResponseWriter, status int, code, desc string, aadsts int) {
	writeJSON(w, status, map[string]any{
		"error": code, "error_description": desc, "error_codes": []int{aadsts},
		"timestamp": time.Now().UTC().Format("2006-01-02 15:04:05Z"), "trace_id": randomHex(16), "correlation_id": randomHex(16),
	})
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'.", 900144)
		return
	}
	tenant := r.PathValue("tenant")
	switch r.PostForm.Get("grant_type") {
	case "client_credentials":
		s.clientCredentials(w, r, tenant)
	case "refresh_token":
		s.refresh(w, r, tenant)
	case "urn:ietf:params:oauth:grant-type:device_code":
		s.deviceToken(w, r, tenant)
	case "authorization_code":
		s.codeToken(w, r, tenant)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.", 70003)
	}
}

// resource is the audience of a ".default" scope or of delegated scopes.
func resource(scope string) string {
	for _, sc := range strings.Fields(scope) {
		switch {
		case strings.HasPrefix(sc, AudienceGraph):
			return AudienceGraph
		case strings.HasPrefix(sc, AudienceOutlook), strings.HasPrefix(sc, "https://outlook.office.com"):
			return AudienceOutlook
		}
	}
	return ""
}

func (s *Server) clientCredentials(w http.ResponseWriter, r *http.Request, tenant string) {
	f := r.PostForm
	clientID := f.Get("client_id")
	s.mu.Lock()
	app, ok := s.apps[clientID]
	faults := s.faults
	s.mu.Unlock()
	if !ok || app.Tenant != tenant {
		oauthError(w, http.StatusBadRequest, "unauthorized_client", fmt.Sprintf("AADSTS700016: Application with identifier '%s' was not found in the directory '%s'.", clientID, tenant), 700016)
		return
	}
	switch {
	case f.Get("client_secret") != "":
		if faults.SecretExpired {
			oauthError(w, http.StatusUnauthorized, "invalid_client", fmt.Sprintf("AADSTS7000222: The provided client secret keys for app '%s' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.", clientID), 7000222)
			return
		}
		if app.Secret == "" || subtle.ConstantTimeCompare([]byte(f.Get("client_secret")), []byte(app.Secret)) != 1 {
			oauthError(w, http.StatusUnauthorized, "invalid_client", fmt.Sprintf("AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", clientID), 7000215)
			return
		}
	case f.Get("client_assertion") != "":
		if err := s.checkAssertion(app, f.Get("client_assertion"), s.Authority()+"/"+tenant+"/oauth2/v2.0/token"); err != nil {
			oauthError(w, http.StatusUnauthorized, "invalid_client", "AADSTS700027: Client assertion failed signature validation: "+err.Error(), 700027)
			return
		}
	default:
		oauthError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000216: 'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.", 7000216)
		return
	}
	aud := resource(f.Get("scope"))
	if aud == "" || !hasDefaultScope(f.Get("scope")) {
		oauthError(w, http.StatusBadRequest, "invalid_scope", "AADSTS1002012: The provided value for scope "+f.Get("scope")+" is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.", 1002012)
		return
	}
	roles := []string{RoleSMTPSend, RoleIMAP}
	if aud == AudienceGraph {
		roles = []string{RoleMailSend}
	}
	s.grant(w, Claims{Audience: aud, Tenant: tenant, AppID: clientID, Roles: roles}, "")
}

// hasDefaultScope: client credentials ask for "<resource>/.default"; the
// OpenID scopes MSAL adds to every request are ignored, as Entra ID does.
func hasDefaultScope(scope string) bool {
	n := 0
	for _, sc := range strings.Fields(scope) {
		switch sc {
		case "openid", "offline_access", "profile":
			continue
		}
		if !strings.HasSuffix(sc, "/.default") {
			return false
		}
		n++
	}
	return n == 1
}

// checkAssertion verifies a certificate credential's client assertion:
// signed by the registered certificate's key, for this token endpoint,
// issued by and about the client, not expired.
func (s *Server) checkAssertion(app App, assertion, endpoint string) error {
	if app.Cert == nil {
		return errors.New("no certificate is registered for the app")
	}
	pub, ok := app.Cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return errors.New("the registered certificate has no RSA key")
	}
	var c struct {
		Aud string `json:"aud"`
		Iss string `json:"iss"`
		Sub string `json:"sub"`
		Exp int64  `json:"exp"`
	}
	if err := verifyJWT(assertion, pub, &c); err != nil {
		return err
	}
	switch {
	case c.Iss != app.ClientID || c.Sub != app.ClientID:
		return errors.New("iss and sub must be the client ID")
	case c.Aud != endpoint:
		return fmt.Errorf("aud %q is not this token endpoint", c.Aud)
	case time.Now().Unix() > c.Exp:
		return errors.New("the assertion is expired")
	}
	return nil
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request, tenant string) {
	f := r.PostForm
	rt := f.Get("refresh_token")
	s.mu.Lock()
	// Rotation: every grant returns a new refresh token; like Entra ID's,
	// the old one stays valid until it expires or is revoked.
	u, ok := s.users[rt]
	faults := s.faults
	s.mu.Unlock()
	switch {
	case !ok || faults.RefreshRevoked:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "AADSTS70008: The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.", 70008)
		return
	case u.Tenant != tenant || u.ClientID != f.Get("client_id"):
		oauthError(w, http.StatusBadRequest, "invalid_grant", "AADSTS700005: Provided Authorization Code is intended to use against other tenant or client.", 700005)
		return
	}
	s.grantUser(w, u, f.Get("scope"))
}

func (s *Server) grantUser(w http.ResponseWriter, u User, scope string) {
	aud := resource(scope)
	if aud == "" {
		aud = AudienceOutlook
	}
	scp := ScopeIMAPUser + " " + ScopeSMTPUser
	if aud == AudienceGraph {
		scp = RoleMailSend
	}
	newRT := s.IssueRefreshToken(u)
	s.grant(w, Claims{Audience: aud, Tenant: u.Tenant, AppID: u.ClientID, Scope: scp, UPN: u.Address}, newRT)
}

// grant signs c and answers the token response.
func (s *Server) grant(w http.ResponseWriter, c Claims, refreshToken string) {
	now := time.Now()
	c.Issuer, c.IssuedAt, c.Expiry = s.issuer(c.Tenant), now.Unix(), now.Add(TokenLifetime).Unix()
	tok, err := signJWT(s.key, s.kid, c)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "AADSTS90000: "+err.Error(), 90000)
		return
	}
	s.mu.Lock()
	s.issued = append(s.issued, tok)
	s.mu.Unlock()
	resp := map[string]any{"token_type": "Bearer", "expires_in": int(TokenLifetime.Seconds()),
		"ext_expires_in": int(TokenLifetime.Seconds()), "access_token": tok}
	if refreshToken != "" {
		resp["refresh_token"] = refreshToken
		resp["scope"] = c.Scope
	}
	s.log.Info("token issued", "aud", c.Audience, "app", c.AppID, "user", c.UPN)
	writeJSON(w, http.StatusOK, resp)
}

// Verify checks an access token for a service: signature, audience,
// expiry, and that it carries permission (an app role or a delegated
// scope). It returns the claims; a failure's error says why, as the
// service would put it in its error challenge.
func (s *Server) Verify(token, audience, permission string) (*Claims, error) {
	var c Claims
	if err := verifyJWT(token, &s.key.PublicKey, &c); err != nil {
		return nil, &VerifyError{Status: 401, Reason: "invalid_token"}
	}
	if c.Audience != audience {
		return &c, &VerifyError{Status: 401, Reason: "invalid audience " + c.Audience}
	}
	if time.Now().Unix() >= c.Expiry {
		return &c, &VerifyError{Status: 401, Reason: "token expired", Expired: true}
	}
	for _, r := range c.Roles {
		if r == permission {
			return &c, nil
		}
	}
	for _, sc := range strings.Fields(c.Scope) {
		if sc == permission {
			return &c, nil
		}
	}
	return &c, &VerifyError{Status: 403, Reason: "token lacks " + permission, Scope: permission}
}

// VerifyError is why a token was refused.
type VerifyError struct {
	Status  int    // 401 or 403
	Reason  string // for logs
	Scope   string // the missing permission (403)
	Expired bool
}

func (e *VerifyError) Error() string { return fmt.Sprintf("%d %s", e.Status, e.Reason) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
