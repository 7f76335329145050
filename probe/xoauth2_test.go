package probe

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/otpprobe/otpprobe/targets"
)

// testJWT is an unsigned JWT with the claims given (servers verify
// signatures; the client only reads claims to explain a refusal).
func testJWT(t *testing.T, claims map[string]any) string {
	t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(b) + ".c2lnbmF0dXJl"
}

func TestDecodeTokenRejection(t *testing.T) {
	now := time.Date(2026, 12, 5, 17, 30, 0, 0, time.UTC)
	expired := testJWT(t, map[string]any{"exp": time.Date(2026, 12, 5, 16, 58, 0, 0, time.UTC).Unix(), "scp": "SMTP.Send"})
	noScope := testJWT(t, map[string]any{"exp": now.Add(time.Hour).Unix(), "scp": "IMAP.AccessAsUser.All"})
	good := testJWT(t, map[string]any{"exp": now.Add(time.Hour).Unix(), "scp": "SMTP.Send"})
	for _, tc := range []struct {
		name, challenge, token, want string
	}{
		{"expired JWT", `{"status":"401","schemes":"bearer","scope":"https://outlook.office.com/SMTP.Send"}`, expired, "token rejected: 401 (expired at 16:58 UTC)"},
		{"scope missing", `{"status":"401","schemes":"bearer","scope":"https://outlook.office.com/SMTP.Send"}`, noScope, "token rejected: 401 (token lacks scope SMTP.Send)"},
		{"403", `{"status":"403","schemes":"bearer","scope":"https://outlook.office365.com/.default"}`, good, "token rejected: 403 (token lacks scope .default)"},
		{"opaque Google token", `{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}`, "ya29.opaque", "token rejected: 400"},
		{"garbage challenge", `not json`, "ya29.opaque", "token rejected: ?"},
		{"valid JWT, other reason", `{"status":"401","schemes":"bearer","scope":"https://outlook.office.com/SMTP.Send"}`, good, "token rejected: 401"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := decodeTokenRejection([]byte(tc.challenge), tc.token, now).Error(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestSendXOAUTH2Rejected: the reason from the error challenge reaches the
// SendError (the final 535 does not carry it) and never the token.
func TestSendXOAUTH2Rejected(t *testing.T) {
	srv := newSMTPTestServer(t, smtpTestStartTLS)
	tok := testJWT(t, map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})
	_, err := srv.senderWith(targets.TLSStartTLS, targets.AuthXOAUTH2, tok).Send(context.Background(), testFrom, []string{testRcpt}, testCanary())
	var se *SendError
	var smtpErr *smtp.SMTPError
	if !errors.As(err, &se) || se.Stage != StageAuth || se.Code != 535 || !errors.As(err, &smtpErr) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(se.Error(), "token rejected: 401 (expired at ") {
		t.Errorf("error %q lacks the decoded rejection", se.Error())
	}
	assertNoSecret(t, tok, se.Error(), se.Transcript)
}

// TestIMAPXOAUTH2Rejected: over IMAP the client does not answer the error
// challenge (go-imap would send "=", which Dovecot refuses with BAD); the
// login fails with the decoded reason and the connection is dropped.
func TestIMAPXOAUTH2Rejected(t *testing.T) {
	ps := startPlain(t, &plainServer{folders: []string{"INBOX"}, token: "the-good-token"})
	mb := ps.mailbox()
	mb.Auth.Mechanism = targets.AuthXOAUTH2
	bad := testJWT(t, map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})
	_, err := dialIMAP(context.Background(), mb, staticCreds(testUser, bad), nil)
	var ie *IMAPError
	var tr *TokenRejection
	if !errors.As(err, &ie) || ie.Stage != StageLogin || !errors.As(err, &tr) || tr.Status != "401" || tr.Expired.IsZero() {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), bad) {
		t.Error("the token is in the error")
	}
}
