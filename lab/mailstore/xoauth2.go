package mailstore

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"

	"github.com/otpprobe/otpprobe/lab/identity"
)

var _ imapserver.SessionSASL = (*session)(nil)

func (s *session) AuthenticateMechanisms() []string {
	if s.store.cfg.VerifyToken != nil {
		return []string{sasl.Plain, "XOAUTH2"}
	}
	return []string{sasl.Plain}
}

func (s *session) Authenticate(mech string) (sasl.Server, error) {
	switch {
	case strings.EqualFold(mech, sasl.Plain):
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return imapserver.ErrAuthFailed
			}
			return s.Login(username, password)
		}), nil
	case strings.EqualFold(mech, "XOAUTH2") && s.store.cfg.VerifyToken != nil:
		return &xoauth2Server{s: s}, nil
	}
	return nil, errors.New("unsupported SASL mechanism")
}

// xoauth2Server takes "user=U^Aauth=Bearer T^A^A"; a refused token gets
// Outlook's JSON error challenge and, after the client's empty answer, NO.
type xoauth2Server struct {
	s      *session
	failed bool
}

func (x *xoauth2Server) Next(resp []byte) ([]byte, bool, error) {
	if x.failed {
		return nil, true, imapserver.ErrAuthFailed
	}
	if resp == nil {
		return []byte{}, false, nil
	}
	user, tok, _ := identity.ParseXOAUTH2(string(resp))
	u := x.s.store.user(user)
	if user == "" || tok == "" || u == nil {
		return nil, true, imapserver.ErrAuthFailed
	}
	if err := x.s.store.cfg.VerifyToken(user, tok); err != nil {
		status := 401
		var ve *identity.VerifyError
		if errors.As(err, &ve) {
			status = ve.Status
		}
		x.failed = true
		ch, _ := json.Marshal(map[string]string{"status": strconv.Itoa(status), "schemes": "bearer", "scope": "https://outlook.office.com/IMAP.AccessAsUser.All"})
		return ch, false, nil
	}
	x.s.UserSession = imapmemserver.NewUserSession(u)
	x.s.username = user
	return nil, true, nil
}
