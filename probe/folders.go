package probe

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// FolderJunk and FolderTrash name a folder by its RFC 6154 special-use role
// instead of by name; the watcher discovers the actual name per mailbox.
const (
	FolderJunk  = string(imap.MailboxAttrJunk)
	FolderTrash = string(imap.MailboxAttrTrash)
)

// ErrNoFolder is returned when no folder has the requested role.
var ErrNoFolder = errors.New("no folder found")

// folderNames are tried, in order, when no folder carries the role
// attribute. Providers' own names first, then common client defaults.
var folderNames = map[imap.MailboxAttr][]string{
	imap.MailboxAttrJunk:  {"[Gmail]/Spam", "Spam", "Junk", "Junk Email", "Bulk", "Bulk Mail"},
	imap.MailboxAttrTrash: {"[Gmail]/Trash", "[Gmail]/Bin", "Trash", "Deleted Items", "Deleted Messages", "Deleted"},
}

// folderFinder discovers special-use folders on one connection, issuing
// each LIST at most once.
type folderFinder struct {
	c       *imapclient.Client
	plain   []*imap.ListData
	special []*imap.ListData
	listed  bool
	asked   bool
}

// DiscoverFolder returns the name of the folder with the given role
// (imap.MailboxAttrJunk, imap.MailboxAttrTrash, ...) on an authenticated
// connection, or an error wrapping ErrNoFolder.
func DiscoverFolder(c *imapclient.Client, role imap.MailboxAttr) (string, error) {
	return (&folderFinder{c: c}).find(role)
}

// find tries plain LIST attributes first (RFC 6154 servers, Gmail
// included, send them unasked), then LIST RETURN (SPECIAL-USE) when the
// server can parse it, then well-known names.
func (f *folderFinder) find(role imap.MailboxAttr) (string, error) {
	if !f.listed {
		l, err := f.c.List("", "*", nil).Collect()
		if err != nil {
			return "", err
		}
		f.plain, f.listed = l, true
	}
	if name, ok := byAttr(f.plain, role); ok {
		return name, nil
	}
	// Any LIST option emits RETURN (...), which a server without
	// LIST-EXTENDED (or IMAP4rev2) rejects with BAD.
	if !f.asked && f.c.Caps().Has(imap.CapListExtended) {
		f.asked = true
		l, err := f.c.List("", "*", &imap.ListOptions{ReturnSpecialUse: true}).Collect()
		var ie *imap.Error
		if err != nil && !errors.As(err, &ie) {
			return "", err
		}
		f.special = l
	}
	if name, ok := byAttr(f.special, role); ok {
		return name, nil
	}
	if name, ok := byName(f.plain, folderNames[role]); ok {
		return name, nil
	}
	return "", fmt.Errorf("%w with role %s", ErrNoFolder, role)
}

func selectable(l *imap.ListData) bool {
	for _, a := range l.Attrs {
		if strings.EqualFold(string(a), string(imap.MailboxAttrNoSelect)) || strings.EqualFold(string(a), string(imap.MailboxAttrNonExistent)) {
			return false
		}
	}
	return true
}

func byAttr(list []*imap.ListData, role imap.MailboxAttr) (string, bool) {
	for _, l := range list {
		if !selectable(l) {
			continue
		}
		for _, a := range l.Attrs {
			if strings.EqualFold(string(a), string(role)) {
				return l.Mailbox, true
			}
		}
	}
	return "", false
}

// byName matches candidates in order against full names, then against the
// last hierarchy level (Dovecot's "INBOX.Junk", Courier's "INBOX/Spam").
func byName(list []*imap.ListData, candidates []string) (string, bool) {
	for _, cand := range candidates {
		for _, l := range list {
			if selectable(l) && strings.EqualFold(l.Mailbox, cand) {
				return l.Mailbox, true
			}
		}
		for _, l := range list {
			if !selectable(l) || l.Delim == 0 {
				continue
			}
			delim := string(l.Delim)
			leaf := l.Mailbox[strings.LastIndex(l.Mailbox, delim)+len(delim):]
			if strings.EqualFold(leaf, cand) {
				return l.Mailbox, true
			}
		}
	}
	return "", false
}
