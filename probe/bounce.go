package probe

import (
	"bytes"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/otpprobe/otpprobe/verify"
)

// maxBounceSize bounds what is fetched of one message in a bounce
// mailbox: a DSN is small, a returned full message is cut here (its
// header, which correlates it, comes first).
const maxBounceSize = 256 << 10

// bounceSection is BODY.PEEK[]<0.256K>: the whole message (a DSN's
// returned header is in its body), without setting \Seen.
var bounceSection = &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: maxBounceSize}}

// Bounce is a failure DSN that matched a live attempt.
type Bounce struct {
	Token   string
	SeenAt  time.Time
	DSN     *verify.DSN
	Message []byte // the DSN as fetched: kept as evidence
}

// Bounces classifies a bounce mailbox's mail (the senders' envelope
// sender): a message is ours when it is a failure DSN whose returned
// header find maps to a live attempt's token. Delay notices, other DSNs
// and other mail are left alone. deliver gets every match.
func Bounces(find func(*verify.DSN) string, deliver func(Bounce)) Classifier {
	return bounces{find, deliver}
}

type bounces struct {
	find    func(*verify.DSN) string
	deliver func(Bounce)
}

func (bounces) Section() *imap.FetchItemBodySection { return bounceSection }
func (bounces) Detail() *imap.FetchItemBodySection  { return nil }

func (b bounces) Match(msg []byte) string {
	d := failureDSN(msg)
	if d == nil {
		return ""
	}
	return b.find(d)
}

func (b bounces) Deliver(f Found) {
	if d := failureDSN(f.Section); d != nil {
		b.deliver(Bounce{Token: f.Key, SeenAt: f.SeenAt, DSN: d, Message: f.Section})
	}
}

// failureDSN parses msg as a DSN reporting a failure; nil for anything
// else (not a DSN, or only a delay notice).
func failureDSN(msg []byte) *verify.DSN {
	d, err := verify.ParseDSN(bytes.NewReader(msg))
	if err != nil || !d.Failed() {
		return nil
	}
	return d
}

// isBounceArrival keeps a bounce out of the seed mailbox watchers: an NDR
// whose Subject quotes the canary's ("Undeliverable: Your code [tok]")
// carries its token but is not a delivered canary.
func isBounceArrival(header []byte) bool {
	h, err := verify.ReadHeader(bytes.NewReader(header))
	return err == nil && verify.IsDSN(h)
}
