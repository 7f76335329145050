package probe

import (
	"context"
	"errors"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// cleanupOrKeep cleans up uids. A refusal (quota, read-only folder) leaves
// the canaries in place for good; when the connection breaks instead, the
// UIDs wait in the backlog for the next connection.
func (s *watchSession) cleanupOrKeep(ctx context.Context, uids []imap.UID) error {
	w := s.w
	err := s.cleanup(uids)
	var ie *imap.Error
	switch {
	case err == nil:
	case errors.As(err, &ie):
		w.log.Warn("imap cleanup refused", "err", err, "count", len(uids))
	default:
		w.keep(uids)
		return w.fail(StageCleanup, ctxErr(ctx, err))
	}
	return nil
}

// keep adds UIDs to the cleanup backlog, forgetting the oldest beyond
// backlogMax.
func (w *Watcher) keep(uids []imap.UID) {
	w.backlog = append(w.backlog, uids...)
	if over := len(w.backlog) - backlogMax; over > 0 {
		w.backlog = w.backlog[over:]
	}
}

// retryBacklog finishes a cleanup that a lost connection interrupted. The
// server may have done the work before the line dropped, so it first asks
// which of those UIDs still exist, and only touches those.
func (s *watchSession) retryBacklog(ctx context.Context) error {
	w := s.w
	if len(w.backlog) == 0 {
		return nil
	}
	defer s.guard()()
	data, err := s.c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{imap.UIDSetNum(w.backlog...)}}, nil).Wait()
	var ie *imap.Error
	if errors.As(err, &ie) {
		w.log.Warn("imap cleanup retry refused", "err", err, "count", len(w.backlog))
		w.backlog = nil
		return nil
	} else if err != nil {
		return w.fail(StageCleanup, ctxErr(ctx, err))
	}
	w.backlog = nil
	if left := data.AllUIDs(); len(left) > 0 {
		return s.cleanupOrKeep(ctx, left)
	}
	return nil
}

// cleanup moves canaries to the trash folder, or flags and expunges them
// by UID so that no other message is touched. Every multi-response command
// is drained (Close) so it cannot block the reader.
func (s *watchSession) cleanup(uids []imap.UID) error {
	set := imap.UIDSetNum(uids...)
	caps := s.c.Caps()
	if s.trash != "" && !strings.EqualFold(s.trash, s.folder) {
		if caps.Has(imap.CapMove) {
			_, err := s.c.Move(set, s.trash).Wait()
			return err
		}
		// imapclient's own MOVE fallback ends with a plain EXPUNGE, which
		// would also remove other mail flagged \Deleted: copy here and
		// expunge by UID below instead.
		if _, err := s.c.Copy(set, s.trash).Wait(); err != nil {
			return err
		}
	}
	err := s.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
	if err != nil {
		return err
	}
	if !caps.Has(imap.CapUIDPlus) {
		return nil // canaries stay flagged \Deleted; see above
	}
	return s.c.UIDExpunge(set).Close()
}
