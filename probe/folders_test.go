package probe

import (
	"errors"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestDiscoverFolder(t *testing.T) {
	cases := []struct {
		name        string
		server      *plainServer
		junk, trash string
	}{
		{
			name: "special-use only on RETURN (SPECIAL-USE)",
			server: &plainServer{folders: []string{"INBOX", "Quarantine", "Bin", "Spam"}, returnOnly: true,
				roles: map[string]imap.MailboxAttr{"Quarantine": imap.MailboxAttrJunk, "Bin": imap.MailboxAttrTrash}},
			junk: "Quarantine", trash: "Bin",
		},
		{
			// Microsoft 365: \Junk is "Junk Email"; a folder named "Junk"
			// (made by some client) must not win by its name.
			name: "special-use beats a decoy name (Microsoft 365)",
			server: &plainServer{folders: []string{"INBOX", "Junk", "Trash", "Junk Email", "Deleted Items"},
				roles: map[string]imap.MailboxAttr{"Junk Email": imap.MailboxAttrJunk, "Deleted Items": imap.MailboxAttrTrash}},
			junk: "Junk Email", trash: "Deleted Items",
		},
		{
			name: "Gmail in British English",
			server: &plainServer{folders: []string{"INBOX", "[Gmail]/Spam", "[Gmail]/Bin", "[Gmail]/All Mail"},
				roles: map[string]imap.MailboxAttr{"[Gmail]/Spam": imap.MailboxAttrJunk, "[Gmail]/Bin": imap.MailboxAttrTrash}},
			junk: "[Gmail]/Spam", trash: "[Gmail]/Bin",
		},
		{
			name:   "names: Gmail's before generic ones",
			server: &plainServer{folders: []string{"INBOX", "Spam", "[Gmail]/Spam", "[Gmail]/Trash"}},
			junk:   "[Gmail]/Spam", trash: "[Gmail]/Trash",
		},
		{
			name:   "names: last hierarchy level, any case",
			server: &plainServer{folders: []string{"INBOX", "INBOX/bulk mail", "INBOX/Deleted Items"}},
			junk:   "INBOX/bulk mail", trash: "INBOX/Deleted Items",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ps := startPlain(t, tc.server)
			c := dialPlain(t, ps)
			ff := &folderFinder{c: c}
			junk, err := ff.find(imap.MailboxAttrJunk)
			if err != nil || junk != tc.junk {
				t.Errorf("junk = %q, %v; want %q", junk, err, tc.junk)
			}
			trash, err := ff.find(imap.MailboxAttrTrash)
			if err != nil || trash != tc.trash {
				t.Errorf("trash = %q, %v; want %q", trash, err, tc.trash)
			}
		})
	}

	t.Run("none", func(t *testing.T) {
		ps := startPlain(t, &plainServer{folders: []string{"INBOX", "Archive"}})
		_, err := DiscoverFolder(dialPlain(t, ps), imap.MailboxAttrJunk)
		if !errors.Is(err, ErrNoFolder) || err.Error() != `no folder found with role \Junk` {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("plain LIST attributes (lab provider)", func(t *testing.T) {
		w := newWorld(t)
		c := w.client()
		for role, want := range map[imap.MailboxAttr]string{imap.MailboxAttrJunk: testJunk, imap.MailboxAttrTrash: testTrash} {
			if got, err := DiscoverFolder(c, role); err != nil || got != want {
				t.Errorf("%s = %q, %v; want %q", role, got, err, want)
			}
		}
	})
}

func TestFolderByNameSkipsNoselect(t *testing.T) {
	list := []*imap.ListData{
		{Mailbox: "Spam", Delim: '/', Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}},
		{Mailbox: "Archive/Spam", Delim: '/'},
		{Mailbox: "Junk", Delim: 0},
	}
	if got, ok := byName(list, folderNames[imap.MailboxAttrJunk]); !ok || got != "Archive/Spam" {
		t.Fatalf("byName = %q, %v", got, ok)
	}
	if _, ok := byAttr([]*imap.ListData{{Mailbox: "X", Attrs: []imap.MailboxAttr{"\\junk", imap.MailboxAttrNonExistent}}}, imap.MailboxAttrJunk); ok {
		t.Fatal("matched a \\NonExistent folder")
	}
	if got, ok := byAttr([]*imap.ListData{{Mailbox: "X", Attrs: []imap.MailboxAttr{"\\junk"}}}, imap.MailboxAttrJunk); !ok || got != "X" {
		t.Fatal("attributes are case-insensitive")
	}
}

// TestDiscoverFolderInterop runs discovery against Dovecot, whose \Junk
// and \Trash are "Junk Email" and "Deleted Items" while folders named
// Junk and Trash exist as decoys (scripts/testservers.sh).
func TestDiscoverFolderInterop(t *testing.T) {
	ep := loadInteropEndpoints(t)
	c := interopIMAP(t, ep, ep.Mailboxes[0])
	for role, want := range map[imap.MailboxAttr]string{imap.MailboxAttrJunk: "Junk Email", imap.MailboxAttrTrash: "Deleted Items"} {
		if got, err := DiscoverFolder(c, role); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", role, got, err, want)
		}
	}
	names, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	decoys := 0
	for _, l := range names {
		if l.Mailbox == "Junk" || l.Mailbox == "Trash" {
			decoys++
		}
	}
	if decoys != 2 {
		t.Errorf("Dovecot lists %d of the decoys Junk and Trash, want 2: the test proves nothing", decoys)
	}
}
