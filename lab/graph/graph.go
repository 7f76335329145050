// Package graph is the lab's Microsoft-Graph-like sendMail endpoint:
// POST /v1.0/users/{id}/sendMail with a base64 MIME body and a bearer
// token for https://graph.microsoft.com with the Mail.Send role. It hands
// the message to the m365 submission pipeline (same checks, DKIM, relay)
// and answers 202 Accepted, or Graph's JSON errors; a fault throttles it
// with 429 and Retry-After.
package graph

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/otpprobe/otpprobe/lab/identity"
)

// Config starts a Server.
type Config struct {
	Addr string
	Host string // in the base URL
	TLS  *tls.Config
	// Verify checks a bearer token for Graph's audience and Mail.Send.
	Verify func(token string) (*identity.Claims, error)
	// Users are the mailboxes the app may send as.
	Users []string
	// Submit hands the MIME message to the sending pipeline.
	Submit func(user, remoteIP string, raw []byte) (qid, msgID string, err error)
	Logger *slog.Logger
}

// Faults make the endpoint misbehave.
type Faults struct {
	Throttle   bool          // answer 429 ApplicationThrottled
	RetryAfter time.Duration // the Retry-After it asks for (default 7s)
}

// Server is a running endpoint.
type Server struct {
	cfg    Config
	ln     net.Listener
	http   *http.Server
	mu     sync.Mutex
	faults Faults
}

// MaxMessageBytes is Graph's limit for a MIME sendMail (4 MB base64).
const MaxMessageBytes = 4 << 20

// Start listens on cfg.Addr.
func Start(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1.0/users/{user}/sendMail", s.sendMail)
	s.http = &http.Server{Handler: mux, TLSConfig: cfg.TLS, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)}
	go s.http.ServeTLS(ln, "", "")
	return s, nil
}

// URL is the base URL clients configure as graph_url.
func (s *Server) URL() string {
	_, port, _ := net.SplitHostPort(s.ln.Addr().String())
	return "https://" + net.JoinHostPort(s.cfg.Host, port)
}

// SetFaults changes the faults in force.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Close stops the server.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.http.Shutdown(ctx)
}

func graphError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg,
		"innerError": map[string]string{"date": time.Now().UTC().Format(time.RFC3339), "request-id": newID()}}})
}

func (s *Server) sendMail(w http.ResponseWriter, r *http.Request) {
	reqID := newID()
	w.Header().Set("request-id", reqID)
	s.mu.Lock()
	f := s.faults
	s.mu.Unlock()
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize"`)
		graphError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty.")
		return
	}
	if _, err := s.cfg.Verify(tok); err != nil {
		var ve *identity.VerifyError
		if errors.As(err, &ve) && ve.Status == http.StatusForbidden {
			graphError(w, http.StatusForbidden, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
			return
		}
		msg := "Access token validation failure. Invalid audience."
		if errors.As(err, &ve) && ve.Expired {
			msg = "Lifetime validation failed, the token is expired."
		}
		graphError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", msg)
		return
	}
	if f.Throttle {
		ra := f.RetryAfter
		if ra <= 0 {
			ra = 7 * time.Second
		}
		w.Header().Set("Retry-After", strconv.Itoa(int(ra.Seconds())))
		graphError(w, http.StatusTooManyRequests, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.")
		return
	}
	user := r.PathValue("user")
	allowed := false
	for _, u := range s.cfg.Users {
		allowed = allowed || strings.EqualFold(u, user)
	}
	if !allowed {
		graphError(w, http.StatusNotFound, "ErrorInvalidUser", "The requested user '"+user+"' is invalid.")
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		graphError(w, http.StatusBadRequest, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxMessageBytes+1))
	if err != nil || len(body) > MaxMessageBytes {
		graphError(w, http.StatusRequestEntityTooLarge, "ErrorMessageSizeExceeded", "The message exceeds the maximum supported size.")
		return
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(body)))
	if err != nil {
		graphError(w, http.StatusBadRequest, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.")
		return
	}
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	qid, msgID, err := s.cfg.Submit(user, ip, raw)
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code < 500 {
			graphError(w, http.StatusServiceUnavailable, "ErrorInternalServerTransientError", se.Message)
			return
		}
		msg := err.Error()
		if errors.As(err, &se) {
			msg = se.Message
		}
		graphError(w, http.StatusBadRequest, "ErrorInvalidRecipients", msg)
		return
	}
	s.cfg.Logger.Info("sendMail accepted", "user", user, "queue_id", qid, "message_id", msgID, "request_id", reqID)
	w.WriteHeader(http.StatusAccepted)
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
