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

// process fetches the classifier's section of set, delivers what it
// matches (with INTERNALDATE not before since) and cleans it up. Other
// mail is only read with BODY.PEEK, never changed. The matches' detail is
// fetched in a second command, once the first is drained.
func (s *watchSession) process(ctx context.Context, set imap.UIDSet, since time.Time) error {
	w := s.w
	minUID := w.lastUID
	section := w.cls.Section()
	fetch := s.c.Fetch(set, &imap.FetchOptions{
		UID:          true,
		InternalDate: true,
		BodySection:  []*imap.FetchItemBodySection{section},
	})
	var matched []imap.UID
	var found []Found
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
		data := buf.FindBodySection(section)
		key := w.cls.Match(data)
		if key == "" {
			continue
		}
		matched = append(matched, buf.UID)
		if _, dup := w.delivered[key]; dup {
			continue
		}
		w.remember(key)
		found = append(found, Found{
			Key: key, Mailbox: w.cfg.Mailbox.Name, Folder: s.folder, SeenAt: seen,
			InternalDate: buf.InternalDate.UTC(), UID: uint32(buf.UID), Section: data,
		})
	}
	fetchErr := fetch.Close()
	if fetchErr == nil && len(found) > 0 {
		s.fetchDetail(found)
	}
	for _, f := range found {
		w.cls.Deliver(f)
		w.update(func(st *WatchState) { st.Delivered++ })
		w.log.Debug("message delivered", "key", f.Key, "uid", f.UID)
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

// fetchDetail fills in the classifier's detail of found. It is evidence,
// not needed to decide: on failure the matches go out without it.
func (s *watchSession) fetchDetail(found []Found) {
	section := s.w.cls.Detail()
	if section == nil {
		return
	}
	uids := make([]imap.UID, len(found))
	for i, f := range found {
		uids[i] = imap.UID(f.UID)
	}
	msgs, err := s.c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true,
		BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		s.w.log.Warn("imap fetch of matched messages' detail failed; delivering without it", "err", err)
		return
	}
	for _, m := range msgs {
		for i := range found {
			if found[i].UID == uint32(m.UID) {
				found[i].Detail = m.FindBodySection(section)
			}
		}
	}
}

// remember records a delivered key, forgetting the oldest beyond
// deliveredMemory, so reconnects and rescans never deliver twice.
func (w *Watcher) remember(tok string) {
	w.delivered[tok] = struct{}{}
	w.order = append(w.order, tok)
	if len(w.order) > deliveredMemory {
		delete(w.delivered, w.order[0])
		w.order = w.order[1:]
	}
}
