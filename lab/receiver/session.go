package receiver

import (
	"io"
	"strings"

	"github.com/emersion/go-smtp"
)

// Replies for envelope and content problems, worded like the big providers.
var (
	errRelayDenied = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: "Relaying denied: this host only accepts mail for its own domain"}
	errNoSuchUser = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1},
		Message: "The email account that you tried to reach does not exist"}
	errBadAddress = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3},
		Message: "The recipient address is not a valid RFC 5321 address"}
	errGreylisted = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1},
		Message: "Greylisted: please try again later"}
	errMailboxUnavailable = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Mailbox temporarily unavailable, try again later"}
)

// session is one SMTP transaction sequence on one host.
type session struct {
	srv  *Server
	host *host
	conn *smtp.Conn

	from  string
	rcpts []string // local parts, lower case
}

func (s *session) Reset()        { s.from, s.rcpts = "", nil }
func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	i := strings.LastIndexByte(to, '@')
	if i <= 0 || i == len(to)-1 {
		return errBadAddress
	}
	local, domain := to[:i], to[i+1:]
	if !strings.EqualFold(strings.TrimSuffix(domain, "."), s.host.Profile.Domain) {
		return errRelayDenied
	}
	user := strings.ToLower(local)
	if !s.host.Store.HasUser(user) {
		return errNoSuchUser
	}
	s.rcpts = append(s.rcpts, user)
	return nil
}

// Data reads the message (go-smtp enforces MaxMessageBytes with 552 5.3.4)
// and hands it to the evaluation and delivery pipeline.
func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return s.srv.receive(s.host, s.conn, s.from, s.rcpts, raw)
}
