package probe

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// watchSession is the state of one selected connection.
type watchSession struct {
	w             *Watcher
	c             *imapclient.Client
	folder, trash string
	selExists     uint32 // EXISTS at SELECT
	lastPoll      time.Time
	expired       atomic.Bool // a guard closed the connection
}

// guard closes the connection if the commands of one round take longer
// than cmdTimeout; the returned func disarms it.
func (s *watchSession) guard() func() bool {
	t := time.AfterFunc(s.w.cmdTimeout, func() {
		s.expired.Store(true)
		s.c.Close()
	})
	return t.Stop
}

// poll fetches every message above the last UID seen.
func (s *watchSession) poll(ctx context.Context, noop bool) error {
	w := s.w
	w.setStatus(WatchPolling)
	defer s.guard()()
	if noop {
		if err := s.c.Noop().Wait(); err != nil {
			return w.fail(StageFetch, ctxErr(ctx, err))
		}
	}
	// The message count the client tracks is not trusted to skip the
	// fetch: it is briefly unset after SELECT (imapclient records it after
	// signalling completion) and drifts when a server's EXPUNGEs are off.
	// n:* always includes the highest UID, even when it is below n:
	// process filters on lastUID.
	set := imap.UIDSet{imap.UIDRange{Start: w.lastUID + 1, Stop: 0}}
	if err := s.process(ctx, set, time.Time{}); err != nil {
		// Some servers refuse "*" in an empty mailbox.
		n := s.selExists
		if mb := s.c.Mailbox(); mb != nil {
			n = mb.NumMessages
		}
		var ie *imap.Error
		if !errors.As(err, &ie) || n > 0 {
			return err
		}
	}
	now := time.Now()
	s.lastPoll = now
	w.update(func(st *WatchState) {
		st.LastPoll, st.LastUID = now, uint32(w.lastUID)
		st.Polls++
	})
	return nil
}

// rescan looks at the newest rescanLimit messages of the last day, whatever
// their UID. SINCE is date-only and in the server's time zone, so it asks
// for one day more and filters on INTERNALDATE.
func (s *watchSession) rescan(ctx context.Context) error {
	defer s.guard()()
	since := time.Now().Add(-rescanWindow)
	data, err := s.c.UIDSearch(&imap.SearchCriteria{Since: since.AddDate(0, 0, -1)}, nil).Wait()
	if err != nil {
		return s.w.fail(StageSearch, ctxErr(ctx, err))
	}
	uids := data.AllUIDs()
	slices.Sort(uids)
	if len(uids) > rescanLimit {
		uids = uids[len(uids)-rescanLimit:]
	}
	if len(uids) == 0 {
		return nil
	}
	return s.process(ctx, imap.UIDSetNum(uids...), since)
}

// process fetches headers of set, delivers the canaries among them (with
// INTERNALDATE not before since) and cleans them up. Other mail is only
// read with BODY.PEEK, never changed. A canary's text is fetched in a
// second command, once the header fetch is drained, for the DKIM re-check.
func (s *watchSession) process(ctx context.Context, set imap.UIDSet, since time.Time) error {
	w := s.w
	minUID := w.lastUID
	fetch := s.c.Fetch(set, &imap.FetchOptions{
		UID:          true,
		InternalDate: true,
		BodySection:  []*imap.FetchItemBodySection{headerSection},
	})
	var matched []imap.UID
	var arrivals []Arrival
	for {
		msg := fetch.Next()
		if msg == nil {
			break
		}
		buf, err := msg.Collect()
		if err != nil {
			break // Close reports it
		}
		if buf.UID <= minUID && since.IsZero() {
			continue
		}
		seen := time.Now().UTC().Truncate(time.Millisecond)
		if buf.UID > w.lastUID {
			w.lastUID = buf.UID
		}
		if !since.IsZero() && buf.InternalDate.Before(since) {
			continue
		}
		hdr := buf.FindBodySection(headerSection)
		tok := matchToken(hdr, w.match)
		if tok == "" {
			continue
		}
		matched = append(matched, buf.UID)
		if _, dup := w.delivered[tok]; dup {
			continue
		}
		w.remember(tok)
		arrivals = append(arrivals, Arrival{
			Token: tok, Mailbox: w.cfg.Mailbox.Name, Folder: s.folder, SeenAt: seen,
			InternalDate: buf.InternalDate.UTC(), UID: uint32(buf.UID), Header: hdr,
		})
	}
	fetchErr := fetch.Close()
	if fetchErr == nil && len(arrivals) > 0 {
		s.fetchBodies(arrivals)
	}
	for _, a := range arrivals {
		w.deliver(a)
		w.update(func(st *WatchState) { st.Delivered++ })
		w.log.Debug("canary arrived", "token", a.Token, "uid", a.UID)
	}
	if fetchErr != nil {
		if cleanupOn(w.cfg.Mailbox) {
			w.keep(matched) // delivered, not yet cleaned up
		}
		return w.fail(StageFetch, ctxErr(ctx, fetchErr))
	}
	if len(matched) == 0 || !cleanupOn(w.cfg.Mailbox) {
		return nil
	}
	return s.cleanupOrKeep(ctx, matched)
}

// textSection is a canary's text, capped: canaries are small, and a huge
// message matching a token must not cost memory.
var textSection = &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Peek: true,
	Partial: &imap.SectionPartial{Offset: 0, Size: 256 << 10}}

// fetchBodies fills in the text of arrivals. It is evidence, not needed to
// decide the outcome: on failure the arrivals go out without it.
func (s *watchSession) fetchBodies(arrivals []Arrival) {
	uids := make([]imap.UID, len(arrivals))
	for i, a := range arrivals {
		uids[i] = imap.UID(a.UID)
	}
	msgs, err := s.c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true,
		BodySection: []*imap.FetchItemBodySection{textSection}}).Collect()
	if err != nil {
		s.w.log.Warn("imap fetch of canary text failed; DKIM re-check limited to the header", "err", err)
		return
	}
	for _, m := range msgs {
		for i := range arrivals {
			if arrivals[i].UID == uint32(m.UID) {
				arrivals[i].Body = m.FindBodySection(textSection)
			}
		}
	}
}

// remember records a delivered token, forgetting the oldest beyond
// deliveredMemory, so reconnects and rescans never deliver twice.
func (w *Watcher) remember(tok string) {
	w.delivered[tok] = struct{}{}
	w.order = append(w.order, tok)
	if len(w.order) > deliveredMemory {
		delete(w.delivered, w.order[0])
		w.order = w.order[1:]
	}
}
