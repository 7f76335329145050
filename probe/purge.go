package probe

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/otpprobe/otpprobe/targets"
)

// PurgeTrash removes from mb's Trash our own canaries (messages carrying
// HeaderID) that arrived before before, so that a real seed mailbox never
// fills its quota with them; nothing else is touched. Trash is the
// mailbox's trash setting, else its \Trash special-use folder. Without
// UIDPLUS the canaries are only flagged \Deleted (a plain EXPUNGE would
// take other deleted mail with them); providers remove those themselves.
func PurgeTrash(ctx context.Context, mb targets.Mailbox, creds Credentials, before time.Time) (int, error) {
	c, err := dialIMAP(ctx, mb, creds, nil)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	fail := func(stage string, err error) (int, error) {
		return 0, &IMAPError{Stage: stage, Mailbox: mb.Name, Err: ctxErr(ctx, err)}
	}
	trash := mb.Trash
	if trash == "" {
		if trash, err = DiscoverFolder(c, imap.MailboxAttrTrash); err != nil {
			return fail(StageList, err)
		}
	}
	if trash == "" {
		return 0, nil // no trash folder: cleanup expunges instead
	}
	if _, err := c.Select(trash, nil).Wait(); err != nil {
		return fail(StageSelect, err)
	}
	data, err := c.UIDSearch(&imap.SearchCriteria{
		Before: before,
		Header: []imap.SearchCriteriaHeaderField{{Key: HeaderID, Value: ""}},
	}, nil).Wait()
	if err != nil {
		return fail(StageSearch, err)
	}
	uids := data.AllUIDs()
	if len(uids) == 0 {
		return 0, nil
	}
	set := imap.UIDSetNum(uids...)
	if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		return fail(StageCleanup, err)
	}
	if caps := c.Caps(); caps.Has(imap.CapUIDPlus) || caps.Has(imap.CapIMAP4rev2) {
		if err := c.UIDExpunge(set).Close(); err != nil {
			return fail(StageCleanup, err)
		}
	}
	c.Logout().Wait()
	return len(uids), nil
}

// PurgeEvery purges the Trash of every mailbox whose canaries are cleaned
// up (cleanup: true) of canaries older than cfg.Cleanup's purge_after,
// now and then every interval, until ctx ends.
func PurgeEvery(ctx context.Context, cfg *targets.Config, interval time.Duration, log *slog.Logger) {
	after := cfg.Cleanup.PurgeAfterDuration()
	if after <= 0 {
		return
	}
	t := time.NewTimer(time.Minute) // out of the way of the start-up
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, mb := range cfg.Mailboxes {
			if !cleanupOn(mb) || ctx.Err() != nil {
				continue
			}
			n, err := PurgeTrash(ctx, mb, credentials(mb.Auth), time.Now().Add(-after))
			switch {
			case err != nil && ctx.Err() == nil:
				log.Warn("purge trash", "mailbox", mb.Name, "err", err)
			case n > 0:
				log.Info("purged canaries from trash", "mailbox", mb.Name, "count", n, "older_than", fmt.Sprint(after))
			}
		}
		t.Reset(interval)
	}
}
