package mailstore

import (
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// session is imapmemserver's UserSession plus SPECIAL-USE: imapmemserver
// ignores CreateOptions.SpecialUse and never writes \Junk or \Trash, so LIST
// is answered here from the names the store tracks. Create, Delete and Rename
// pass through and keep that name set in step.
type session struct {
	*imapmemserver.UserSession // nil until Login

	store    *Server
	username string
}

var _ imapserver.SessionIMAP4rev2 = (*session)(nil)

// Login also serves AUTHENTICATE PLAIN, which imapserver maps onto Login.
func (s *session) Login(username, password string) error {
	u := s.store.user(username)
	if u == nil {
		return imapserver.ErrAuthFailed
	}
	if err := u.Login(username, password); err != nil {
		return err
	}
	s.UserSession = imapmemserver.NewUserSession(u)
	s.username = username
	return nil
}

func (s *session) Close() error {
	if s.UserSession == nil {
		return nil
	}
	return s.UserSession.Close()
}

func (s *session) Create(name string, options *imap.CreateOptions) error {
	if err := s.UserSession.Create(name, options); err != nil {
		return err
	}
	s.store.track(s.username, strings.TrimRight(name, string(delim)), "")
	return nil
}

func (s *session) Delete(name string) error {
	if err := s.UserSession.Delete(name); err != nil {
		return err
	}
	s.store.track(s.username, "", name)
	return nil
}

func (s *session) Rename(oldName, newName string, options *imap.RenameOptions) error {
	if err := s.UserSession.Rename(oldName, newName, options); err != nil {
		return err
	}
	s.store.track(s.username, strings.TrimRight(newName, string(delim)), oldName)
	return nil
}

// List writes RFC 6154 attributes whether or not the client asked with
// RETURN (SPECIAL-USE), as Gmail and Dovecot do, and honours the
// SPECIAL-USE selection option. Parents that are not mailboxes themselves
// ("[Gmail]") are listed as \Noselect, like Gmail's.
func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if len(patterns) == 0 {
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: delim})
	}
	if options.SelectSubscribed {
		// LSUB and LIST (SUBSCRIBED): subscription state lives in imapmemserver.
		return s.UserSession.List(w, ref, patterns, options)
	}
	names := s.store.names(s.username)
	real := make(map[string]bool, len(names))
	for _, n := range names {
		real[n] = true
	}
	all := map[string]bool{}
	for _, n := range names {
		all[n] = true
		parts := strings.Split(n, string(delim))
		for i := 1; i < len(parts); i++ {
			all[strings.Join(parts[:i], string(delim))] = true
		}
	}
	hasChildren := func(name string) bool {
		prefix := name + string(delim)
		for n := range all {
			if strings.HasPrefix(n, prefix) {
				return true
			}
		}
		return false
	}
	var sorted []string
	for n := range all {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, name := range sorted {
		if !matchAny(name, ref, patterns) {
			continue
		}
		var attrs []imap.MailboxAttr
		if !real[name] {
			attrs = append(attrs, imap.MailboxAttrNoSelect)
		}
		if hasChildren(name) {
			attrs = append(attrs, imap.MailboxAttrHasChildren)
		} else {
			attrs = append(attrs, imap.MailboxAttrHasNoChildren)
		}
		use := s.store.specialUse(name)
		if options.SelectSpecialUse && use == "" {
			continue
		}
		if use != "" {
			attrs = append(attrs, use)
		}
		data := &imap.ListData{Mailbox: name, Delim: delim, Attrs: attrs}
		if options.ReturnStatus != nil && real[name] {
			if st, err := s.UserSession.Status(name, options.ReturnStatus); err == nil {
				data.Status = st
			}
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	return nil
}

func matchAny(name, ref string, patterns []string) bool {
	for _, p := range patterns {
		if imapserver.MatchList(name, delim, ref, p) {
			return true
		}
	}
	return false
}

// Idle first writes the updates queued since the last command. imapmemserver
// only flushes its queue when a new update arrives during IDLE, so mail
// appended between a client's last command and IDLE would stay unannounced
// until the next delivery; real servers (Dovecot, Gmail) announce it at once.
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if s.UserSession == nil {
		return nil
	}
	if err := s.UserSession.Poll(w, true); err != nil {
		return err
	}
	return s.UserSession.Idle(w, stop)
}
