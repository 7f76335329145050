package probe

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/otpprobe/otpprobe/targets"
	"github.com/otpprobe/otpprobe/token"
)

// Submitter hands a canary to a sending service: SMTP submission (Sender)
// or Microsoft Graph sendMail (GraphSender). Both fail with a *SendError.
type Submitter interface {
	Send(ctx context.Context, envelopeFrom string, to []string, msg []byte) (*SendResult, error)
}

// NewSubmitter builds the submitter cfg.Type asks for.
func NewSubmitter(cfg targets.Sender) (Submitter, error) {
	if cfg.Type == targets.SenderGraph {
		return NewGraphSender(cfg, nil)
	}
	return NewSender(cfg, credentials(cfg.Auth))
}

// graphTimeout bounds one sendMail request when the context allows longer.
const graphTimeout = 60 * time.Second

// GraphSender submits canaries through Microsoft Graph: POST
// {graph_url}/v1.0/users/{user}/sendMail with the MIME message base64
// encoded as a text/plain body, so our own headers (Message-ID,
// X-Otpprobe-Id) survive. Graph answers 202 Accepted with no body; it
// takes the recipients from the message's To/Cc/Bcc and the envelope
// sender is the user's mailbox.
type GraphSender struct {
	cfg    targets.Sender
	tokens token.Source
	hc     *http.Client
	url    string
}

// NewGraphSender prepares a Graph sender; tokens defaults to the shared
// source of cfg's oauth2 block for Graph's audience.
func NewGraphSender(cfg targets.Sender, tokens token.Source) (*GraphSender, error) {
	if cfg.Auth.OAuth2 == nil {
		return nil, errors.New("graph sender: auth.oauth2 is required")
	}
	if tokens == nil {
		var err error
		if tokens, err = token.Shared.For(cfg.Auth.OAuth2, true); err != nil {
			return nil, fmt.Errorf("graph sender: %w", err)
		}
	}
	tlsCfg, err := cfg.TLSConfig()
	if err != nil {
		return nil, fmt.Errorf("graph sender: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	base := strings.TrimSuffix(cfg.GraphURL, "/")
	return &GraphSender{cfg: cfg, tokens: tokens, hc: &http.Client{Transport: tr},
		url: base + "/v1.0/users/" + url.PathEscape(cfg.User) + "/sendMail"}, nil
}

// GraphError is Graph's error body: {"error":{"code":…,"message":…}}.
type GraphError struct {
	Status     int
	Code       string // e.g. ErrorAccessDenied, ApplicationThrottled
	Message    string
	RetryAfter time.Duration // 429 and 503: how long Graph asked us to wait
}

func (e *GraphError) Error() string {
	s := fmt.Sprintf("sendMail: HTTP %d", e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + oneLine(e.Message)
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (Retry-After %s)", e.RetryAfter)
	}
	return s
}

// Send submits msg. envelopeFrom and to are not sent: Graph derives them
// from the mailbox and the message's headers.
func (g *GraphSender) Send(ctx context.Context, envelopeFrom string, to []string, msg []byte) (*SendResult, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, graphTimeout)
		defer cancel()
	}
	tr := newTranscript()
	tok, err := g.tokens.Token(ctx)
	if err != nil {
		return nil, g.fail(StageToken, 0, err, tr, "")
	}
	body := base64.StdEncoding.EncodeToString(msg)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url, strings.NewReader(body))
	if err != nil {
		return nil, g.fail(StageSubmit, 0, err, tr, tok)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "text/plain")
	tr.note("POST %s (MIME, %d bytes, base64)", g.url, len(msg))
	resp, err := g.hc.Do(req)
	if err != nil {
		return nil, g.fail(StageSubmit, 0, err, tr, tok)
	}
	defer resp.Body.Close()
	at := time.Now().UTC().Truncate(time.Millisecond)
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	reqID := resp.Header.Get("request-id")
	tr.note("HTTP %d %s request-id %s", resp.StatusCode, http.StatusText(resp.StatusCode), reqID)
	if resp.StatusCode != http.StatusAccepted {
		ge := &GraphError{Status: resp.StatusCode}
		var body struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(data, &body) == nil {
			ge.Code, ge.Message = body.Error.Code, body.Error.Message
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			ge.RetryAfter = time.Duration(s) * time.Second
		}
		return nil, g.fail(StageSubmit, resp.StatusCode, ge, tr, tok)
	}
	reply := fmt.Sprintf("202 Accepted request-id %s", reqID)
	return &SendResult{SubmittedAt: at, Reply: reply, QueueID: reqID, Transcript: tr.String(tok)}, nil
}

// fail builds the *SendError of a Graph submission: the HTTP status is
// its code; 429, 5xx and network failures are temporary.
func (g *GraphSender) fail(stage string, status int, err error, tr *transcript, tok string) *SendError {
	se := &SendError{Stage: stage, Code: status, Err: err, Via: "graph"}
	var ge *GraphError
	switch {
	case errors.As(err, &ge):
		se.Temporary = status == http.StatusTooManyRequests || status >= 500
	case stage == StageSubmit:
		se.Temporary = true // the request did not get an answer
	default:
		var te *token.Error
		se.Temporary = errors.As(err, &te) && te.Status == 0
	}
	if tok != "" && strings.Contains(err.Error(), tok) {
		se.Err = errors.New(scrub(err.Error(), tok))
	}
	tr.note("%s", se.Error())
	se.Transcript = tr.String(tok)
	return se
}
