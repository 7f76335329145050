package sender

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

var (
	errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 57},
		Message: "Client not authenticated to send mail"}
	errNoRcpt = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3},
		Message: "Invalid recipient address"}
	errNullSender = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: "Null sender not accepted for submission"}
	errTempQueue = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Temporary server error, please try again later"}
)

// sendAsDenied is Exchange Online's answer to a sender address the
// authenticated user may not use.
func (s *Server) sendAsDenied(addr string) error {
	if s.cfg.Style == StyleM365 {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 60},
			Message: "SMTP; Client does not have permissions to send as this sender"}
	}
	return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: fmt.Sprintf("<%s>: Sender address rejected: not owned by user", addr)}
}

// backend creates one session per SMTP connection (and again after STARTTLS).
type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	remote := c.Conn().RemoteAddr().String()
	ip, _, _ := net.SplitHostPort(remote)
	return &session{s: b.s, conn: c, remoteIP: ip}, nil
}

type session struct {
	s        *Server
	conn     *smtp.Conn
	remoteIP string
	user     string // authenticated user, "" until AUTH succeeds
	from     string
	rcpts    []string
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string {
	if ss.s.cfg.VerifyToken != nil {
		return []string{sasl.Plain, sasl.Login, mechXOAUTH2}
	}
	return []string{sasl.Plain, sasl.Login}
}

// errBasicAuthDisabled is Exchange Online's answer to AUTH PLAIN/LOGIN
// once SMTP AUTH with Basic authentication is turned off for the tenant.
var errBasicAuthDisabled = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 139},
	Message: "Authentication unsuccessful, basic authentication is disabled. [AM0PR02CA0001.eurprd02.prod.outlook.test]"}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return ss.authFailed(username)
			}
			return ss.authenticate(username, password)
		}), nil
	case sasl.Login:
		return newLoginServer(ss.authenticate), nil
	case mechXOAUTH2:
		if ss.s.cfg.VerifyToken != nil {
			return newXOAUTH2Server(ss.authenticateToken), nil
		}
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *session) authenticate(username, password string) error {
	if ss.s.Faults().BasicAuthDisabled {
		ss.s.stats.authFailures.Add(1)
		ss.s.log.Info("submission basic auth refused: disabled", "user", username, "remote", ss.remoteIP)
		return errBasicAuthDisabled
	}
	userOK := subtle.ConstantTimeCompare([]byte(username), []byte(ss.s.cfg.Username))
	passOK := subtle.ConstantTimeCompare([]byte(password), []byte(ss.s.cfg.Password))
	if userOK&passOK != 1 {
		return ss.authFailed(username)
	}
	ss.user = username
	return nil
}

// authenticateToken checks an XOAUTH2 login: the token must be valid for
// the service and the user one the app may send as.
func (ss *session) authenticateToken(username, token string) error {
	if err := ss.s.cfg.VerifyToken(username, token); err != nil {
		ss.s.stats.authFailures.Add(1)
		ss.s.log.Info("submission xoauth2 refused", "user", username, "remote", ss.remoteIP, "reason", err.Error())
		return err
	}
	if subtle.ConstantTimeCompare([]byte(username), []byte(ss.s.cfg.Username)) != 1 {
		return ss.authFailed(username)
	}
	ss.user = username
	return nil
}

func (ss *session) authFailed(username string) error {
	ss.s.stats.authFailures.Add(1)
	ss.s.log.Info("submission auth failed", "user", username, "remote", ss.remoteIP)
	return smtp.ErrAuthFailed
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.user == "" {
		return errAuthRequired
	}
	if from == "" {
		return errNullSender
	}
	if !ss.s.allowedAddress(from) {
		ss.s.stats.rejected.Add(1)
		ss.s.log.Info("submission sender denied", "user", ss.user, "from", from)
		return ss.s.sendAsDenied(from)
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.user == "" {
		return errAuthRequired
	}
	if domainOf(to) == "" || strings.HasPrefix(to, "@") {
		return errNoRcpt
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	if ss.user == "" {
		return errAuthRequired
	}
	start := time.Now()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		return err // ErrDataTooLarge or a network error; go-smtp replies
	}
	qid := ss.s.newQueueID()
	tlsState, _ := ss.conn.TLSConnectionState()
	msg, msgID, err := ss.s.prepare(buf.Bytes(), trace{
		helo: ss.conn.Hostname(), remoteIP: ss.remoteIP, tls: &tlsState,
		queueID: qid, rcpts: ss.rcpts, at: start,
	})
	if err != nil {
		ss.s.stats.rejected.Add(1)
		ss.s.log.Info("submission rejected", "queue_id", qid, "err", err)
		return err
	}
	signed, err := sign(ss.s.cfg.DKIM, msg)
	if err != nil {
		ss.s.log.Error("submission signing failed", "queue_id", qid, "err", err)
		return errTempQueue
	}
	ss.s.stats.submitted.Add(1)
	if ss.s.lose() {
		ss.s.stats.dropped.Add(1)
		ss.s.log.Info("submission dropped (loss fault)", "queue_id", qid, "message_id", msgID)
	} else {
		ss.s.queue.enqueue(&queuedMessage{id: qid, from: ss.from, data: signed, arrival: start}, ss.rcpts)
		ss.s.log.Info("submission queued", "queue_id", qid, "message_id", msgID,
			"from", ss.from, "rcpts", len(ss.rcpts), "bytes", len(signed))
	}
	return ss.s.queuedReply(qid, msgID, buf.Len(), time.Since(start))
}

func (ss *session) Reset() {
	ss.from = ""
	ss.rcpts = nil
}

func (ss *session) Logout() error { return nil }

// queuedReply is the final 250 after DATA, in the service's style. go-smtp
// sends an *SMTPError returned from Data verbatim, whatever its code.
func (s *Server) queuedReply(qid, msgID string, size int, took time.Duration) error {
	if s.cfg.Style == StyleM365 {
		secs := took.Seconds()
		rate := float64(size) / 1024 / max(secs, 0.001)
		return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 6, 0}, Message: fmt.Sprintf(
			"<%s> [InternalId=%s, Hostname=%s] %d bytes in %.3f, %.3f KB/sec Queued mail for delivery",
			msgID, qid, s.cfg.Hostname, size, secs, rate)}
	}
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "Ok: queued as " + qid}
}

// slogAdapter routes go-smtp's internal error log to slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Printf(format string, v ...any) { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Println(v ...any)               { a.l.Warn(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }

// SubmitMIME takes a message the way Graph sendMail hands it over: on
// behalf of user (its mailbox is the envelope sender), to the To, Cc and
// Bcc of the message. It runs the submission pipeline's checks, DKIM
// signing and queue, and returns the queue ID and Message-ID.
func (s *Server) SubmitMIME(user, remoteIP string, raw []byte) (qid, msgID string, err error) {
	start := time.Now()
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return "", "", errMalformed
	}
	mh := mail.Header{Header: message.Header{Header: h}}
	var rcpts []string
	for _, f := range []string{"To", "Cc", "Bcc"} {
		list, err := mh.AddressList(f)
		if err != nil {
			return "", "", errNoRcpt
		}
		for _, a := range list {
			rcpts = append(rcpts, a.Address)
		}
	}
	if len(rcpts) == 0 {
		return "", "", errNoRcpt
	}
	qid = s.newQueueID()
	msg, msgID, err := s.prepare(raw, trace{helo: "graph", remoteIP: remoteIP, queueID: qid, rcpts: rcpts, at: start})
	if err != nil {
		s.stats.rejected.Add(1)
		return "", "", err
	}
	signed, err := sign(s.cfg.DKIM, msg)
	if err != nil {
		return "", "", errTempQueue
	}
	s.stats.submitted.Add(1)
	if s.lose() {
		s.stats.dropped.Add(1)
		return qid, msgID, nil
	}
	s.queue.enqueue(&queuedMessage{id: qid, from: user, data: signed, arrival: start}, rcpts)
	s.log.Info("graph submission queued", "queue_id", qid, "message_id", msgID, "from", user, "rcpts", len(rcpts), "bytes", len(signed))
	return qid, msgID, nil
}
