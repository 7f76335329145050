package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/otpprobe/otpprobe/targets"
)

// Caller is who made a request: the token's name and scope, or
// "anonymous" when no tokens are configured.
type Caller struct {
	Name   string
	Scope  string
	Source string // the client's IP address
}

type callerKey struct{}

// CallerFrom returns the caller the Auth middleware admitted.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// Anonymous is the caller's name when no tokens are configured.
const Anonymous = "anonymous"

// Auth is the HTTP middleware that admits requests by bearer token. It is
// one handler around the whole mux, so every route added to it (the API,
// the dashboard) is covered without registering anything:
//
//   - no tokens configured: everything is open (run refuses that on a
//     non-loopback address unless allow_unauthenticated says so);
//   - /metrics, /healthz, /readyz: open, or a read token with
//     metrics_auth: read;
//   - GET and HEAD: a read or admin token;
//   - anything else (pin, unpin): an admin token.
//
// Tokens are compared as SHA-256 digests in constant time, against every
// configured token, so neither the match nor its position leaks through
// timing. A refused request is logged with its method, path and address,
// never with its headers or body.
type Auth struct {
	policy atomic.Pointer[policy]
	log    *slog.Logger
}

type policy struct {
	tokens      []token
	metricsOpen bool
}

type token struct {
	name, scope string
	sum         [sha256.Size]byte
}

// NewAuth returns the middleware for h's tokens.
func NewAuth(h targets.HTTP, logger *slog.Logger) *Auth {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &Auth{log: logger}
	a.Set(h)
	return a
}

// Set replaces the tokens and metrics policy (a config reload); requests
// already admitted are not affected.
func (a *Auth) Set(h targets.HTTP) {
	p := &policy{metricsOpen: h.MetricsAuth != targets.MetricsAuthRead}
	for _, t := range h.Tokens {
		p.tokens = append(p.tokens, token{name: t.Name, scope: t.Scope, sum: sha256.Sum256([]byte(t.Token().Reveal()))})
	}
	a.policy.Store(p)
}

// realm is the protection space named in WWW-Authenticate.
const realm = `realm="otpprobe"`

// Wrap returns next behind the token check.
func (a *Auth) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := a.policy.Load()
		src := sourceAddr(r)
		if len(p.tokens) == 0 {
			next.ServeHTTP(w, withCaller(r, Caller{Name: Anonymous, Source: src}))
			return
		}
		public := isHealthOrMetrics(r.URL.Path)
		if public && p.metricsOpen {
			next.ServeHTTP(w, r)
			return
		}
		presented, ok := credential(r)
		if !ok {
			a.refuse(w, r, src, http.StatusUnauthorized, challenge(r, ""), "a bearer token is required", "no credentials")
			return
		}
		t, found := p.match(presented)
		if !found {
			a.refuse(w, r, src, http.StatusUnauthorized, challenge(r, `error="invalid_token"`), "the token is not valid", "unknown token")
			return
		}
		if needsAdmin(r, public) && t.scope != targets.ScopeAdmin {
			a.refuse(w, r, src, http.StatusForbidden, `Bearer `+realm+`, error="insufficient_scope", scope="admin"`,
				"this request needs a token with scope admin", "token "+t.name+" has scope "+t.scope)
			return
		}
		next.ServeHTTP(w, withCaller(r, Caller{Name: t.name, Scope: t.scope, Source: src}))
	})
}

// match compares against every token without stopping at a match.
func (p *policy) match(presented string) (token, bool) {
	sum := sha256.Sum256([]byte(presented))
	var found token
	ok := 0
	for _, t := range p.tokens {
		if subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1 {
			found, ok = t, 1
		}
	}
	return found, ok == 1
}

func needsAdmin(r *http.Request, public bool) bool {
	return !public && r.Method != http.MethodGet && r.Method != http.MethodHead
}

func isHealthOrMetrics(path string) bool {
	switch path {
	case "/metrics", "/healthz", "/readyz":
		return true
	}
	return false
}

// credential is the bearer token, or for browsers (the dashboard) the
// password of Basic authentication, whose user name is ignored.
func credential(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, rest, _ := strings.Cut(h, " ")
	rest = strings.TrimSpace(rest)
	switch {
	case strings.EqualFold(scheme, "Bearer") && rest != "":
		return rest, true
	case strings.EqualFold(scheme, "Basic") && rest != "":
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return "", false
		}
		_, pw, ok := strings.Cut(string(raw), ":")
		return pw, ok && pw != ""
	}
	return "", false
}

// challenge asks for a bearer token; pages outside the API also offer
// Basic, so that a browser opening the dashboard prompts for the token.
func challenge(r *http.Request, extra string) string {
	c := "Bearer " + realm
	if extra != "" {
		c += ", " + extra
	}
	if !strings.HasPrefix(r.URL.Path, "/api/") && !isHealthOrMetrics(r.URL.Path) {
		c += ", Basic " + realm + `, charset="UTF-8"`
	}
	return c
}

func (a *Auth) refuse(w http.ResponseWriter, r *http.Request, src string, code int, challenge, msg, why string) {
	a.log.Warn("http: request refused", "status", code, "method", r.Method, "path", r.URL.Path, "source", src, "why", why)
	w.Header().Set("WWW-Authenticate", challenge)
	writeError(w, code, msg)
}

func withCaller(r *http.Request, c Caller) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), callerKey{}, c))
}

// sourceAddr is the peer's IP. Forwarding headers are not trusted: any
// client can set them.
func sourceAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
