package probe

import (
	"encoding/base64"
	"encoding/json"
	"path"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
)

// xoauth2Client is the client side of Google's and Microsoft's XOAUTH2
// SASL mechanism, which go-sasl does not ship (and will not: go-sasl #20).
// It keeps the server's error challenge, decoded, as the reason a token
// was refused: the final reply rarely says (Postfix: "authentication
// failed: (reason unavailable)", Exchange: "Authentication unsuccessful").
type xoauth2Client struct {
	user, token string
	// cancel makes Next fail instead of answering the error challenge:
	// go-imap v2 encodes an empty response as "=", which Dovecot refuses
	// with BAD, hiding the reason; the IMAP caller closes the connection.
	cancel   bool
	rejected *TokenRejection
}

func newXOAUTH2Client(user, token string) *xoauth2Client {
	return &xoauth2Client{user: user, token: token}
}

func (c *xoauth2Client) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

// Next answers the server's error challenge (a base64 JSON status) with an
// empty response, as the mechanism requires; the server then ends the
// exchange with 535 / NO. Over IMAP (cancel) it returns the decoded
// rejection as the error instead.
func (c *xoauth2Client) Next(challenge []byte) ([]byte, error) {
	c.rejected = decodeTokenRejection(challenge, c.token, time.Now())
	if c.cancel {
		return nil, c.rejected
	}
	return []byte{}, nil
}

var _ sasl.Client = (*xoauth2Client)(nil)

// TokenRejection is a server's XOAUTH2 error challenge,
// {"status":"401","schemes":"bearer","scope":"…"}, with what the token
// itself says when it is a JWT (Microsoft's are).
type TokenRejection struct {
	Status  string    // "401" invalid or expired, "400" malformed, "403" not allowed
	Scope   string    // the scope the server wants
	Expired time.Time // the token's exp when it has passed; zero otherwise
	Lacks   string    // the permission the token lacks, when that is why
}

func (r *TokenRejection) Error() string {
	s := "token rejected: " + r.Status
	switch {
	case !r.Expired.IsZero():
		s += " (expired at " + r.Expired.UTC().Format("15:04") + " UTC)"
	case r.Lacks != "":
		s += " (token lacks scope " + r.Lacks + ")"
	}
	return s
}

// decodeTokenRejection reads the challenge and the token's own claims.
func decodeTokenRejection(challenge []byte, token string, now time.Time) *TokenRejection {
	var ch struct {
		Status  string `json:"status"`
		Schemes string `json:"schemes"`
		Scope   string `json:"scope"`
	}
	r := &TokenRejection{Status: "?"}
	if json.Unmarshal(challenge, &ch) == nil {
		r.Status, r.Scope = ch.Status, ch.Scope
	}
	claims, ok := jwtClaims(token)
	if !ok {
		return r
	}
	if claims.Exp > 0 && now.Unix() >= claims.Exp {
		r.Expired = time.Unix(claims.Exp, 0)
		return r
	}
	if r.Status == "403" || r.Scope != "" {
		want := path.Base(strings.TrimSuffix(r.Scope, "/"))
		granted := strings.Fields(claims.Scp)
		granted = append(granted, claims.Roles...)
		has := false
		for _, g := range granted {
			has = has || strings.EqualFold(g, want)
		}
		if r.Status == "403" || (want != ".default" && want != "" && !has) {
			r.Lacks = want
		}
	}
	return r
}

type tokenClaims struct {
	Exp   int64    `json:"exp"`
	Scp   string   `json:"scp"`
	Roles []string `json:"roles"`
}

// jwtClaims decodes a JWT's payload without verifying it: only to explain
// a refusal, never to trust anything.
func jwtClaims(token string) (tokenClaims, bool) {
	var c tokenClaims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, false
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil || json.Unmarshal(b, &c) != nil {
		return c, false
	}
	return c, true
}
