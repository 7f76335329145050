package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/targets"
	"github.com/otpprobe/otpprobe/verify"
)

const (
	defaultBouncePoll = 5 * time.Second
	// maxBounceSize bounds what is fetched of one message in the bounce
	// mailbox: a DSN is small, a returned full message is cut here (its
	// header, which correlates it, comes first).
	maxBounceSize = 256 << 10
)

// bounceSection is BODY.PEEK[]<0.256K>: the whole message (a DSN's
// returned header is in its body), without setting \Seen.
var bounceSection = &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: maxBounceSize}}

// Bounce is a failure DSN that matched a live attempt.
type Bounce struct {
	Token  string
	SeenAt time.Time
	DSN    *verify.DSN
}

// BounceWatcher polls the INBOX of the bounce mailbox (the senders'
// envelope sender), reads each new message whole, and delivers the
// failure DSNs whose returned header names a live attempt. Mail that is
// no DSN, or no DSN of ours, is left alone.
type BounceWatcher struct {
	mb      targets.Mailbox
	creds   Credentials
	every   time.Duration
	find    func(*verify.DSN) string // token of the live attempt, or ""
	deliver func(Bounce)
	log     *slog.Logger
	poke    chan struct{}
	lastUID imap.UID
	uidVal  uint32
}

// NewBounceWatcher returns a watcher for mb's INBOX; find maps a DSN to a
// live attempt's token, deliver receives the matches.
func NewBounceWatcher(mb targets.Mailbox, creds Credentials, every time.Duration, log *slog.Logger,
	find func(*verify.DSN) string, deliver func(Bounce)) *BounceWatcher {
	if every <= 0 {
		every = defaultBouncePoll
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &BounceWatcher{mb: mb, creds: creds, every: every, find: find, deliver: deliver,
		log: log.With("mailbox", mb.Name, "folder", "INBOX", "role", "bounces"), poke: make(chan struct{}, 1)}
}

// Poke makes the watcher poll now. It never blocks.
func (b *BounceWatcher) Poke() {
	select {
	case b.poke <- struct{}{}:
	default:
	}
}

// Run polls until ctx is done, reconnecting with backoff.
func (b *BounceWatcher) Run(ctx context.Context) error {
	for failures := 0; ; failures++ {
		start := time.Now()
		err := b.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > backoffMax {
			failures = 0
		}
		wait := backoff(failures)
		b.log.Warn("bounce watcher disconnected", "err", err, "retry_in", wait.Round(time.Millisecond))
		if !sleep(ctx, wait) {
			return nil
		}
	}
}

func (b *BounceWatcher) session(ctx context.Context) error {
	setupCtx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	c, err := dialIMAP(setupCtx, b.mb, b.creds, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	trash := ""
	if cleanupOn(b.mb) {
		trash = b.mb.Trash
		if trash == "" {
			if trash, err = (&folderFinder{c: c}).find(imap.MailboxAttrTrash); errors.Is(err, ErrNoFolder) {
				trash, err = "", nil
			}
			if err != nil {
				return &IMAPError{Stage: StageList, Mailbox: b.mb.Name, Err: ctxErr(ctx, err)}
			}
		}
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		return &IMAPError{Stage: StageSelect, Mailbox: b.mb.Name, Err: ctxErr(ctx, err)}
	}
	s := &bounceSession{c: c, trash: trash}
	if sel.UIDValidity != b.uidVal {
		// First connection or a recreated folder: DSNs of the last day may
		// belong to resumed attempts.
		b.uidVal, b.lastUID = sel.UIDValidity, 0
		data, err := c.UIDSearch(&imap.SearchCriteria{Since: time.Now().Add(-rescanWindow).AddDate(0, 0, -1)}, nil).Wait()
		if err != nil {
			return &IMAPError{Stage: StageSearch, Mailbox: b.mb.Name, Err: ctxErr(ctx, err)}
		}
		uids := data.AllUIDs()
		slices.Sort(uids)
		if len(uids) > rescanLimit {
			uids = uids[len(uids)-rescanLimit:]
		}
		if len(uids) > 0 {
			if err := b.process(ctx, s, imap.UIDSetNum(uids...)); err != nil {
				return err
			}
		}
		if sel.UIDNext > 0 && sel.UIDNext-1 > b.lastUID {
			b.lastUID = sel.UIDNext - 1
		}
	}
	for {
		if err := c.Noop().Wait(); err != nil {
			return &IMAPError{Stage: StageFetch, Mailbox: b.mb.Name, Err: ctxErr(ctx, err)}
		}
		if mb := c.Mailbox(); mb == nil || mb.NumMessages > 0 {
			if err := b.process(ctx, s, imap.UIDSet{imap.UIDRange{Start: b.lastUID + 1, Stop: 0}}); err != nil {
				return err
			}
		}
		t := time.NewTimer(b.every)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-c.Closed():
			t.Stop()
			return &IMAPError{Stage: StageFetch, Mailbox: b.mb.Name, Err: errors.New("connection closed by server")}
		case <-b.poke:
			t.Stop()
		case <-t.C:
		}
	}
}

// process fetches set whole, delivers matching failure DSNs and cleans
// them up like canaries.
func (b *BounceWatcher) process(ctx context.Context, s *bounceSession, set imap.UIDSet) error {
	// imapclient's read deadline only starts with a response: a silent
	// server would block Next forever without this.
	t := time.AfterFunc(cmdTimeout, func() { s.c.Close() })
	defer t.Stop()
	minUID := b.lastUID
	fetch := s.c.Fetch(set, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{bounceSection}})
	var matched []imap.UID
	for {
		msg := fetch.Next()
		if msg == nil {
			break
		}
		buf, err := msg.Collect()
		if err != nil {
			break
		}
		if buf.UID > b.lastUID {
			b.lastUID = buf.UID
		} else if minUID > 0 && buf.UID <= minUID {
			continue // n:* returns the last message even when it is old
		}
		raw := buf.FindBodySection(bounceSection)
		d, err := verify.ParseDSN(bytes.NewReader(raw))
		if err != nil || !d.Failed() {
			continue // not a bounce, or only a delay notice
		}
		tok := b.find(d)
		if tok == "" {
			continue
		}
		matched = append(matched, buf.UID)
		b.deliver(Bounce{Token: tok, SeenAt: time.Now().UTC().Truncate(time.Millisecond), DSN: d})
	}
	if err := fetch.Close(); err != nil {
		return &IMAPError{Stage: StageFetch, Mailbox: b.mb.Name, Err: ctxErr(ctx, err)}
	}
	if len(matched) > 0 && cleanupOn(b.mb) {
		if err := s.cleanup(matched); err != nil {
			b.log.Warn("bounce cleanup failed", "err", err, "count", len(matched))
		}
	}
	return nil
}

// bounceSession is one selected connection to the bounce INBOX.
type bounceSession struct {
	c     *imapclient.Client
	trash string // "" expunges instead of moving
}

// cleanup moves matched DSNs to the trash, or flags and expunges them by
// UID so no other message is touched. Commands are drained (Close).
func (s *bounceSession) cleanup(uids []imap.UID) error {
	set := imap.UIDSetNum(uids...)
	caps := s.c.Caps()
	if s.trash != "" && !strings.EqualFold(s.trash, "INBOX") && caps.Has(imap.CapMove) {
		_, err := s.c.Move(set, s.trash).Wait()
		return err
	}
	if s.trash != "" {
		if _, err := s.c.Copy(set, s.trash).Wait(); err != nil {
			return err
		}
	}
	if err := s.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		return err
	}
	if !caps.Has(imap.CapUIDPlus) {
		return nil // left flagged \Deleted: a plain EXPUNGE could remove others' mail
	}
	return s.c.UIDExpunge(set).Close()
}

// bounceToken finds the live attempt a DSN is about: by the returned
// X-Otpprobe-Id, the token in the returned Subject, then the Message-ID.
func (e *Engine) bounceToken(d *verify.DSN) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if tok := strings.TrimSpace(d.OriginalProbeID); e.live[tok] != nil {
		return tok
	}
	for _, c := range bracketedWords(d.OriginalSubject) {
		if e.live[c] != nil {
			return c
		}
	}
	if id := strings.Trim(strings.TrimSpace(d.OriginalMessageID), "<>"); id != "" {
		for tok, la := range e.live {
			if strings.EqualFold(la.a.MessageID, id) {
				return tok
			}
		}
	}
	return ""
}

// onBounce decides an attempt a failure DSN reported. The DSN's status,
// diagnostic and remote MTA replace the submission's reply in SMTP (the
// reply moves to Detail): the bounce is what the user needs to see.
func (e *Engine) onBounce(bn Bounce) {
	e.mu.Lock()
	for {
		la := e.live[bn.Token]
		if la == nil || la.arrived { // decided, or the canary was delivered after all
			e.mu.Unlock()
			return
		}
		if !la.sending {
			delete(e.live, bn.Token)
			e.mu.Unlock()
			e.decideBounce(la.a, bn)
			return
		}
		// The DSN overtook the submission's end (a relay that bounces before
		// it answers QUIT, or while the submission is being stored). Wait for
		// it (a send is bounded by sendTimeout): deciding now would let the
		// pending row land after the bounced one, and returning undecided
		// would let the watcher remove the DSN before the bounce is stored.
		sent := la.sent
		e.mu.Unlock()
		<-sent
		e.mu.Lock()
	}
}

// decideBounce decides a, taken out of the live set, as bounced by bn.
func (e *Engine) decideBounce(a *attempt.Attempt, bn Bounce) {
	r := failedRecipient(bn.DSN)
	detail := bounceDetail{DSN: bn.DSN, SeenAt: bn.SeenAt, SubmissionReply: a.SMTP.Reply}
	if b, err := json.Marshal(map[string]any{"bounce": detail}); err == nil {
		a.Detail = string(b)
	}
	a.Outcome = attempt.OutcomeBounced
	a.SMTP = attempt.SMTPResult{Stage: attempt.StageBounce, Code: diagnosticCode(r.DiagnosticCode), Enhanced: r.Status, Reply: bounceReply(r)}
	e.finalize(context.Background(), a)
}

type bounceDetail struct {
	DSN             *verify.DSN `json:"dsn"`
	SeenAt          time.Time   `json:"seen_at"`
	SubmissionReply string      `json:"submission_reply,omitempty"`
}

// failedRecipient is the first recipient the DSN reports as failed.
func failedRecipient(d *verify.DSN) verify.DSNRecipient {
	for _, r := range d.Recipients {
		if strings.EqualFold(r.Action, "failed") || strings.HasPrefix(r.Status, "5.") {
			return r
		}
	}
	if len(d.Recipients) > 0 {
		return d.Recipients[0]
	}
	return verify.DSNRecipient{}
}

// diagnosticCode is the SMTP reply code of "smtp; 550 5.7.26 …", or 0.
func diagnosticCode(diag string) int {
	_, v, ok := strings.Cut(diag, ";")
	if !ok {
		v = diag
	}
	v = strings.TrimSpace(v)
	if len(v) < 3 || (len(v) > 3 && v[3] != ' ' && v[3] != '-') {
		return 0
	}
	n, err := strconv.Atoi(v[:3])
	if err != nil || n < 200 || n > 599 {
		return 0
	}
	return n
}

func bounceReply(r verify.DSNRecipient) string {
	s := strings.TrimSpace(r.DiagnosticCode)
	if s == "" {
		s = "delivery failed, status " + r.Status
	}
	if r.RemoteMTA != "" {
		s += " (remote MTA " + r.RemoteMTA + ")"
	}
	return s
}

// isBounceArrival keeps a bounce out of the seed mailbox watchers: an NDR
// whose Subject quotes the canary's ("Undeliverable: Your code [tok]")
// carries its token but is not a delivered canary.
func isBounceArrival(header []byte) bool {
	h, err := verify.ReadHeader(bytes.NewReader(header))
	return err == nil && verify.IsDSN(h)
}
