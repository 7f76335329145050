package mailstore

import (
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// maxDeliveries bounds the delivery log; older entries are dropped
// (DeliveryCount still counts them), so a lab left running stays flat.
const maxDeliveries = 10_000

// emptyTrashEvery runs EmptyTrash every d until the server closes.
func (s *Server) emptyTrashEvery(d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.EmptyTrash()
		}
	}
}

// EmptyTrash removes from every user's Trash the messages that were
// there at the previous call already, and returns how many it removed.
// Called every TrashAfter, a message stays in Trash between one and two
// periods: what providers do with their 30 days, in lab time.
func (s *Server) EmptyTrash() int {
	s.mu.Lock()
	users := make(map[string]*imapmemserver.User, len(s.users))
	for name, u := range s.users {
		users[name] = u
	}
	s.mu.Unlock()
	removed := 0
	for name, u := range users {
		removed += s.emptyTrash(name, u)
	}
	return removed
}

func (s *Server) emptyTrash(name string, u *imapmemserver.User) int {
	sess := imapmemserver.NewUserSession(u)
	defer sess.Close()
	if _, err := sess.Select(s.cfg.TrashFolder, nil); err != nil {
		return 0
	}
	data, err := sess.Search(imapserver.NumKindUID, &imap.SearchCriteria{}, &imap.SearchOptions{})
	if err != nil {
		return 0
	}
	now, _ := data.All.(imap.UIDSet)
	s.mu.Lock()
	before := s.trashSeen[name]
	s.mu.Unlock()
	var old imap.UIDSet
	var kept imap.UIDSet
	for _, uid := range uidList(now) {
		if before.Contains(uid) {
			old.AddNum(uid)
		} else {
			kept.AddNum(uid)
		}
	}
	n := len(uidList(old))
	if n > 0 {
		flags := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}
		if err := sess.Store(nil, old, flags, nil); err != nil {
			return 0
		}
		if err := sess.Expunge(nil, &old); err != nil {
			return 0
		}
	}
	s.mu.Lock()
	s.trashSeen[name] = kept
	s.mu.Unlock()
	return n
}

func uidList(set imap.UIDSet) []imap.UID {
	l, _ := set.Nums()
	return l
}

// DeliveryCount is how many messages were ever delivered here.
func (s *Server) DeliveryCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.delivered
}
