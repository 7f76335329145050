package probe

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/targets"
)

// interopOAuth2 is what scripts/testservers.sh wrote for Dovecot's oauth2
// passdb: the HS256 key and the claims it checks.
type interopOAuth2 struct {
	Key      string `json:"hs256_key"` // base64
	Issuer   string `json:"issuer"`
	Audience string `json:"audience"`
	Scope    string `json:"scope"`
}

func loadInteropOAuth2(t *testing.T) interopOAuth2 {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(filepath.Dir(os.Getenv("OTPPROBE_INTEROP_ENDPOINTS")), "oauth2.json"))
	if err != nil {
		t.Fatalf("oauth2.json (scripts/testservers.sh writes it beside endpoints.json): %v", err)
	}
	var o interopOAuth2
	if err := json.Unmarshal(data, &o); err != nil {
		t.Fatal(err)
	}
	return o
}

// mint signs an HS256 JWT for user that Dovecot validates locally.
func (o interopOAuth2) mint(t *testing.T, user string, exp time.Time) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(o.Key)
	if err != nil {
		t.Fatal(err)
	}
	head, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
	body, _ := json.Marshal(map[string]any{"sub": user, "upn": user, "iss": o.Issuer, "aud": o.Audience, "scope": o.Scope,
		"iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": exp.Unix()})
	signing := base64.RawURLEncoding.EncodeToString(head) + "." + base64.RawURLEncoding.EncodeToString(body)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// TestXOAUTH2Interop logs in with tokens the test mints to Dovecot's
// oauth2 passdb: over IMAP directly and over SMTP through Postfix's
// Dovecot SASL. A valid token delivers; an expired one is refused with
// the reason decoded from the error challenge, not "(reason unavailable)"
// or go-imap's BAD.
func TestXOAUTH2Interop(t *testing.T) {
	ep := loadInteropEndpoints(t)
	o := loadInteropOAuth2(t)
	s, mbEP := ep.Senders[0], ep.Mailboxes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*interopWait)
	defer cancel()
	valid := func(user string) string { return o.mint(t, user, time.Now().Add(time.Hour)) }
	expiredAt := time.Now().Add(-time.Hour).Truncate(time.Minute)
	expired := func(user string) string { return o.mint(t, user, expiredAt) }

	mb := targets.Mailbox{Name: mbEP.Name, Address: mbEP.Address,
		Endpoint: targets.Endpoint{Host: mbEP.Host, Port: mbEP.Port, TLS: mbEP.TLS, CAFile: ep.CAFile},
		Auth:     targets.Auth{Mechanism: targets.AuthXOAUTH2, Username: mbEP.Username}}

	t.Run("smtp valid token delivers, imap valid token logs in", func(t *testing.T) {
		token := interopToken(t)
		res, err := interopSender(t, ep, targets.AuthXOAUTH2, valid(s.Username)).Send(ctx, s.From, []string{mbEP.Address}, interopMessage(s.From, mbEP.Address, token))
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		if !strings.Contains(res.Transcript, "C: AUTH XOAUTH2 [redacted]") {
			t.Errorf("transcript:\n%s", res.Transcript)
		}
		c, err := dialIMAP(ctx, mb, staticCreds(mbEP.Username, valid(mbEP.Username)), nil)
		if err != nil {
			t.Fatalf("imap xoauth2: %v", err)
		}
		c.Close()
		waitInteropMessage(t, ep, mbEP, "INBOX", token)
	})

	t.Run("smtp expired token", func(t *testing.T) {
		tok := expired(s.Username)
		_, err := interopSender(t, ep, targets.AuthXOAUTH2, tok).Send(ctx, s.From, []string{mbEP.Address}, interopMessage(s.From, mbEP.Address, interopToken(t)))
		se := interopSendError(t, err, StageAuth, 535, "5.7.8")
		want := fmt.Sprintf("token rejected: 401 (expired at %s UTC)", expiredAt.UTC().Format("15:04"))
		if !strings.Contains(se.Error(), want) {
			t.Errorf("Error() = %q, want it to say %q", se.Error(), want)
		}
		assertNoSecretText(t, tok, se.Error(), se.Transcript)
	})

	t.Run("imap expired token", func(t *testing.T) {
		tok := expired(mbEP.Username)
		_, err := dialIMAP(ctx, mb, staticCreds(mbEP.Username, tok), nil)
		var tr *TokenRejection
		if !errors.As(err, &tr) || tr.Status != "401" || !tr.Expired.Equal(expiredAt) {
			t.Fatalf("err = %v, want the decoded 401 expired at %s", err, expiredAt)
		}
		if strings.Contains(err.Error(), "BAD") || strings.Contains(err.Error(), tok) {
			t.Errorf("err = %v", err)
		}
	})
}
