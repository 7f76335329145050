package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/otpprobe/otpprobe/targets"
)

// Webhook signature headers. The signature is "sha256=" + hex of
// HMAC-SHA256(secret, timestamp + "." + body); receivers recompute it and
// reject timestamps too far from their clock (replays).
const (
	HeaderTimestamp = "X-Otpprobe-Timestamp"
	HeaderSignature = "X-Otpprobe-Signature"
	HeaderEvent     = "X-Otpprobe-Event" // alert | route_transition
	WebhookPrefix   = "webhook:"
)

// Webhook posts events as JSON to a URL, signed.
type Webhook struct {
	name   string
	url    string
	secret []byte
	client *http.Client
	now    func() time.Time
}

// NewWebhook builds the notifier for cfg (its secret read at load).
func NewWebhook(cfg targets.Webhook) (*Webhook, error) {
	client, err := httpClient(cfg.Timeout, cfg.CAFile, cfg.ClientAuth)
	if err != nil {
		return nil, fmt.Errorf("webhook %s: %w", cfg.Name, err)
	}
	secret := cfg.Secret().Reveal()
	if secret == "" {
		return nil, fmt.Errorf("webhook %s: no secret", cfg.Name)
	}
	return &Webhook{name: WebhookPrefix + cfg.Name, url: cfg.URL, secret: []byte(secret), client: client, now: time.Now}, nil
}

func (w *Webhook) Name() string             { return w.name }
func (w *Webhook) Accepts(kind string) bool { return kind == KindAlert || kind == KindTransition }

// Notify posts payload; any 2xx is success.
func (w *Webhook) Notify(ctx context.Context, kind string, payload []byte) error {
	ts := strconv.FormatInt(w.now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("%s: %w", w.name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "otpprobe")
	req.Header.Set(HeaderEvent, kind)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(w.secret, ts, payload))
	return do(w.client, req, w.name)
}

// Sign returns the signature header value for body sent at timestamp ts.
func Sign(secret []byte, ts string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Signature verification errors.
var (
	ErrBadSignature = errors.New("webhook signature does not match")
	ErrStale        = errors.New("webhook timestamp outside the allowed skew")
)

// Verify checks a received webhook: the signature over ts and body, and
// that ts is within maxSkew of now.
func Verify(secret []byte, ts, signature string, body []byte, now time.Time, maxSkew time.Duration) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q", ErrStale, ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > maxSkew || d < -maxSkew {
		return ErrStale
	}
	if !hmac.Equal([]byte(Sign(secret, ts, body)), []byte(signature)) {
		return ErrBadSignature
	}
	return nil
}

// do sends req and wants a 2xx. Errors never include the URL's query or
// credentials.
func do(client *http.Client, req *http.Request, name string) error {
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: HTTP %d: %s", name, resp.StatusCode, strings.Join(strings.Fields(string(body)), " "))
	}
	return nil
}

// httpClient verifies TLS with the system roots, or only with caFile's,
// presents auth's client certificate and adds its Basic or bearer
// credentials to every request.
func httpClient(timeout time.Duration, caFile string, auth targets.ClientAuth) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // notifications go where configured, not through an environment proxy
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	if auth.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(auth.CertFile, auth.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate %s: %w", auth.CertFile, err)
		}
		tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
	}
	var rt http.RoundTripper = tr
	switch {
	case auth.BasicAuth != nil:
		rt = authorized{rt, func(r *http.Request) { r.SetBasicAuth(auth.BasicAuth.Username, auth.BasicAuth.Password().Reveal()) }}
	case auth.BearerToken() != "":
		rt = authorized{rt, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+auth.BearerToken().Reveal()) }}
	}
	return &http.Client{Timeout: timeout, Transport: rt,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}

// authorized adds credentials to each request (on a copy: a RoundTripper
// must not change its caller's request).
type authorized struct {
	next http.RoundTripper
	set  func(*http.Request)
}

func (a authorized) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	a.set(r)
	return a.next.RoundTrip(r)
}
