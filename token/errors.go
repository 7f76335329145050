package token

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
	"golang.org/x/oauth2"
)

// Error is a token endpoint's refusal or an unreachable endpoint: the
// OAuth2 error code (invalid_client, invalid_grant, ...) and the server's
// description (Microsoft's carries the AADSTS number). It never holds a
// secret or a token.
type Error struct {
	Status      int    // HTTP status; 0 when the endpoint was not reached
	Code        string // OAuth2 error, e.g. "invalid_client"
	Description string // the server's error_description, first line
	Err         error  // the cause when the endpoint was not reached
}

func (e *Error) Error() string {
	switch {
	case e.Code != "":
		msg := "token endpoint refused: " + e.Code
		if e.Description != "" {
			msg += ": " + firstSentence(e.Description)
		}
		if h := e.Hint(); h != "" {
			msg += " (" + h + ")"
		}
		return msg
	case e.Status != 0:
		return fmt.Sprintf("token endpoint answered HTTP %d", e.Status)
	}
	return "token endpoint unreachable: " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Hint is what a person should do about e, or "".
func (e *Error) Hint() string {
	d := e.Description
	switch {
	case strings.Contains(d, "AADSTS7000222") || strings.Contains(d, "AADSTS7000215"):
		return "the app's client secret is expired or wrong: create a new secret in Entra ID (App registrations > Certificates & secrets) or use a certificate"
	case e.Code == "invalid_grant":
		return "the refresh token was revoked or expired: run otpprobe auth login again"
	case e.Code == "invalid_client":
		return "the client credentials were refused: check client_id, the secret or certificate, and the tenant"
	case e.Code == "invalid_scope":
		return "the scope is not granted to the app: check the API permissions and admin consent"
	}
	return ""
}

// endpointError is what the server said in an OAuth2 error response
// (RFC 6749 §5.2).
type endpointError struct {
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func parseEndpointError(status int, body []byte) *Error {
	var ee endpointError
	_ = json.Unmarshal(body, &ee)
	desc, _, _ := strings.Cut(strings.TrimSpace(ee.Description), "\n")
	desc, _, _ = strings.Cut(desc, "\r")
	if len(desc) > 300 {
		desc = desc[:300]
	}
	return &Error{Status: status, Code: ee.Code, Description: strings.TrimSpace(desc)}
}

// fromMSAL types an MSAL error; its message (which has the token URL and
// the reply) is dropped unless the endpoint was not reached.
func fromMSAL(err error) error {
	var ce msalerrors.CallErr
	if errors.As(err, &ce) && ce.Resp != nil {
		body, _ := io.ReadAll(io.LimitReader(ce.Resp.Body, 64<<10))
		return parseEndpointError(ce.Resp.StatusCode, body)
	}
	return &Error{Err: err}
}

// fromOAuth2 types an x/oauth2 error.
func fromOAuth2(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		if re.ErrorCode != "" {
			e := &Error{Status: status, Code: re.ErrorCode, Description: re.ErrorDescription}
			e.Description, _, _ = strings.Cut(e.Description, "\n")
			e.Description = strings.TrimSpace(strings.TrimSuffix(e.Description, "\r"))
			return e
		}
		return parseEndpointError(status, re.Body)
	}
	return &Error{Err: err}
}

// firstSentence keeps an AADSTS description to its first sentence (the
// rest is links and trace IDs).
func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i > 0 {
		return s[:i+1]
	}
	return s
}
