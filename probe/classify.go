package probe

import (
	"time"

	"github.com/emersion/go-imap/v2"
)

// Classifier tells a Watcher which messages of its folder are ours and
// takes them. For every new message the watcher fetches Section and asks
// Match; for the matches it fetches Detail (if any) and calls Deliver.
// A delivered message is cleaned up (moved to the trash or expunged) once
// Deliver returns, so Deliver must have stored what it needs by then.
// Messages that do not match are only read with BODY.PEEK, never changed.
// Match and Deliver run on the watcher's goroutine and must not block
// for long.
type Classifier interface {
	Section() *imap.FetchItemBodySection
	// Detail is fetched for matches only; nil when Section is enough.
	Detail() *imap.FetchItemBodySection
	// Match returns the key of a message that is ours, "" otherwise. A key
	// is delivered once per watcher, however often the message is seen.
	Match(section []byte) (key string)
	Deliver(Found)
}

// Found is a message a Classifier matched.
type Found struct {
	Key          string
	Mailbox      string    // configured mailbox name
	Folder       string    // actual folder name it was found in
	UID          uint32    //
	SeenAt       time.Time // when the watcher fetched it, UTC, ms
	InternalDate time.Time
	Section      []byte // what Section fetched
	Detail       []byte // what Detail fetched; nil when not asked for or not fetched
}

// Canaries classifies a seed mailbox's mail: a message is ours when its
// X-Otpprobe-Id or Subject token is one live says belongs to an attempt in
// flight. A DSN quoting a canary's Subject is not a canary. deliver gets
// every match.
func Canaries(live func(token string) bool, deliver func(Arrival)) Classifier {
	return canaries{live, deliver}
}

type canaries struct {
	live    func(string) bool
	deliver func(Arrival)
}

// headerSection is BODY.PEEK[HEADER]: the whole header block, without
// setting \Seen.
var headerSection = &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}

// textSection is a canary's text, capped: canaries are small, and a huge
// message matching a token must not cost memory. It is evidence for the
// DKIM re-check, not needed to decide the outcome.
var textSection = &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Peek: true,
	Partial: &imap.SectionPartial{Offset: 0, Size: 256 << 10}}

func (canaries) Section() *imap.FetchItemBodySection { return headerSection }
func (canaries) Detail() *imap.FetchItemBodySection  { return textSection }

func (c canaries) Match(header []byte) string {
	if isBounceArrival(header) { // an NDR quoting the canary's Subject
		return ""
	}
	return matchToken(header, c.live)
}

func (c canaries) Deliver(f Found) {
	c.deliver(Arrival{Token: f.Key, Mailbox: f.Mailbox, Folder: f.Folder, SeenAt: f.SeenAt,
		InternalDate: f.InternalDate, UID: f.UID, Header: f.Section, Body: f.Detail})
}
