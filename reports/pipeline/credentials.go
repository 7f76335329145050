package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/otpprobe/otpprobe/reports/alert"
)

// alertTimeout bounds storing an alert from a watcher's goroutine.
const alertTimeout = 10 * time.Second

// LoginChanged turns an IMAP watcher's login result into the mailbox's
// OTPCredentialsRefused alert (probe.Options.AuthChanged): it fires at
// the first refusal and is resolved by the first login the server
// accepts, whichever watcher of the mailbox makes it (they share the
// credentials). Firing again while it fires only refreshes it, so a
// watcher backing off costs nothing.
func (p *Pipeline) LoginChanged(mailbox, folder string, refused error, retryIn time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), alertTimeout)
	defer cancel()
	labels := map[string]string{"mailbox": mailbox, "severity": "ticket"}
	var err error
	if refused == nil {
		err = p.Alerts.Resolve(ctx, alert.CredentialsRefused, labels, fmt.Sprintf("the IMAP server of %s accepts the prober's login again", mailbox))
	} else {
		err = p.Alerts.Fire(ctx, alert.Alert{Name: alert.CredentialsRefused, Labels: labels,
			Summary: fmt.Sprintf("the IMAP login of %s (%s) is refused: nothing arriving there is seen", mailbox, folder),
			Diagnosis: fmt.Sprintf("%v. The watcher waits %v before its next try (doubling up to login_backoff_max) so the account is not locked. "+
				"Fix the credentials, check them with otpprobe auth test --mailbox %s (the running prober then retries at once), or reload.",
				refused, retryIn.Round(time.Second), mailbox)})
	}
	if err != nil {
		p.opts.Logger.Error("alert", "err", err)
	}
}
