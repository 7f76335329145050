package probe

import (
	"context"
	"errors"

	"github.com/otpprobe/otpprobe/targets"
)

// Login connects to the submission service, secures the connection and
// authenticates as a send would, then says QUIT: no message is sent
// (`otpprobe auth test`). A failure is a *SendError naming the stage;
// mech is the SASL mechanism used ("" for none).
func (s *Sender) Login(ctx context.Context) (mech, transcript string, err error) {
	x := &exchange{s: s, ctx: ctx, tr: newTranscript()}
	defer x.close()
	if err := x.connect(); err != nil {
		return s.mech, "", err
	}
	if err := x.auth(); err != nil {
		return s.mech, "", err
	}
	if err := x.c.Quit(); err != nil {
		x.tr.note("QUIT failed after the login: %s", err)
	}
	return s.mech, x.tr.String(x.secret), nil
}

// CheckIMAPLogin connects to mb, logs in with creds and logs out: what a
// watcher does before it selects a folder (`otpprobe auth test`). A
// failure is an *IMAPError naming the stage; a refused XOAUTH2 token
// carries the server's decoded reason.
func CheckIMAPLogin(ctx context.Context, mb targets.Mailbox, creds Credentials) error {
	c, err := dialIMAP(ctx, mb, creds, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Logout().Wait(); err != nil {
		return &IMAPError{Stage: StageLogin, Mailbox: mb.Name, Err: errors.Join(errors.New("LOGOUT after a successful login"), err)}
	}
	return nil
}
