package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/otpprobe/otpprobe/targets"
)

const (
	defaultPollIdle = 30 * time.Second // safety net when IDLE is in use
	defaultPoll     = 5 * time.Second  // without IDLE
	// maxIdle restarts IDLE well before the 30 min servers may allow
	// (RFC 2177 §3: 29 min).
	maxIdle = 25 * time.Minute
	// setupTimeout bounds dial, TLS, login, LIST and SELECT together.
	setupTimeout = 60 * time.Second
	// cmdTimeout bounds one round of commands: imapclient's read deadline
	// only applies once a response has started, so a server that goes
	// silent would otherwise block a Wait forever.
	cmdTimeout = 60 * time.Second

	// pokeMinGap is the least time between polls that Pokes cause.
	pokeMinGap = time.Second

	backoffMin = 500 * time.Millisecond
	backoffMax = 30 * time.Second

	// A rescan (first connect, UIDVALIDITY change) looks at mail of the
	// last day, newest rescanLimit messages.
	rescanWindow = 24 * time.Hour
	rescanLimit  = 500
	// deliveredMemory bounds the tokens remembered against re-delivery.
	deliveredMemory = 4096
	// backlogMax bounds the canaries whose cleanup awaits a connection.
	backlogMax = 1024
)

// WatchConfig is one watched folder of one mailbox.
type WatchConfig struct {
	Mailbox targets.Mailbox
	// Folder is a folder name ("INBOX") or a special-use role (FolderJunk)
	// to discover; Mailbox.Junk overrides discovery of FolderJunk.
	Folder string
	// Label names the watcher in metrics and health (mailbox/label);
	// default INBOX, "junk" for FolderJunk, or the folder's name.
	Label string
	Creds Credentials
	// PollEvery is the polling interval: the safety net when IDLE is used
	// (default 30s), the only way otherwise (default 5s).
	PollEvery time.Duration
	// NoIdle polls even when the server advertises IDLE (broken proxies).
	NoIdle bool
	Logger *slog.Logger
	// OnLoginFailure is told each time the server refuses the login
	// (cause "auth") or the connection fails before it ("dial", "tls",
	// "config"); nil for none.
	OnLoginFailure func(cause string)
	// OnAuth is told each time the server refuses the credentials (the
	// reason, and the wait before the next try) and each time it accepts
	// them (nil, 0); nil for none. It runs on the watcher's goroutine.
	OnAuth func(refused error, retryIn time.Duration)
	// LoginBackoffBase is the first wait after a refused login (default
	// 1 min; tests shorten it); it doubles up to Mailbox.LoginBackoffMax.
	LoginBackoffBase time.Duration
}

// Arrival is a canary seen in a watched folder.
type Arrival struct {
	Token        string    // from X-Otpprobe-Id, else the Subject token
	Mailbox      string    // configured mailbox name
	Folder       string    // actual folder name it was found in
	SeenAt       time.Time // when the watcher fetched it, UTC, ms
	InternalDate time.Time
	UID          uint32
	Header       []byte // the full header block, kept for evidence
	// Body is the message text (at most 256 KiB) for the DKIM re-check;
	// nil when it could not be fetched.
	Body []byte
}

// WatchStatus is what a watcher is doing.
type WatchStatus string

const (
	WatchConnecting WatchStatus = "connecting"
	WatchIdle       WatchStatus = "idle"    // connected, in IDLE
	WatchPolling    WatchStatus = "polling" // connected, fetching or waiting without IDLE
	WatchBackoff    WatchStatus = "backoff" // disconnected, waiting to retry
	WatchStopped    WatchStatus = "stopped"
)

// WatchState is a snapshot for metrics and health checks.
type WatchState struct {
	Mailbox   string // configured mailbox name
	Label     string // the watched folder as configured: INBOX, junk, or a folder name
	Status    WatchStatus
	Connected bool
	// Since is when the watcher last connected (Connected) or lost or
	// failed its connection (not Connected); the zero time before Run.
	Since       time.Time
	Folder      string // actual folder name once resolved
	Idle        bool   // IDLE is in use on the current connection
	UIDValidity uint32
	LastUID     uint32
	LastPoll    time.Time // last completed poll
	Polls       uint64    // completed polls
	Reconnects  int       // connections lost since Run started
	Delivered   uint64    // arrivals delivered
	LastError   string    // last session error; never holds secrets
	// LoginRefused: the server refused the credentials and the watcher
	// waits until RetryAt (or a reload, or RetryLogin) before it tries
	// again; LoginRefusals counts the refusals in a row.
	LoginRefused  bool
	LoginRefusals int
	RetryAt       time.Time
}

// Watcher holds one long-lived IMAP connection to one folder and hands
// the messages its Classifier recognises to it: canaries in a seed
// mailbox, DSNs in a bounce mailbox. One Watcher serves every attempt
// to that folder.
type Watcher struct {
	cfg WatchConfig
	cls Classifier
	log *slog.Logger

	poke       chan struct{}
	retry      chan struct{} // RetryLogin
	cmdTimeout time.Duration // cmdTimeout; shorter in tests
	rescan     atomic.Bool
	running    atomic.Bool

	mu    sync.Mutex
	state WatchState

	// Owned by the Run goroutine.
	uidValidity uint32
	lastUID     imap.UID
	delivered   map[string]struct{}
	order       []string
	// backlog holds UIDs (under uidValidity) of delivered canaries whose
	// cleanup was cut off with the connection; the next one retries it.
	backlog []imap.UID
	// authStreak counts refused logins since the last accepted one.
	authStreak int
}

// NewWatcher returns a watcher of cfg's folder that hands what cls
// matches to cls. Register resumed attempts (for cls to match) before
// Run: the first connection rescans the last day once.
func NewWatcher(cfg WatchConfig, cls Classifier) *Watcher {
	if cfg.Folder == "" {
		cfg.Folder = "INBOX"
	}
	if cfg.Label == "" {
		cfg.Label = folderLabel(cfg.Folder)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watcher{
		cfg:        cfg,
		cls:        cls,
		log:        log.With("mailbox", cfg.Mailbox.Name, "folder", cfg.Folder),
		poke:       make(chan struct{}, 1),
		retry:      make(chan struct{}, 1),
		cmdTimeout: cmdTimeout,
		delivered:  make(map[string]struct{}),
		state:      WatchState{Mailbox: cfg.Mailbox.Name, Label: cfg.Label, Status: WatchStopped},
	}
}

// Poke makes the watcher poll now, or within a second of its last poll
// (pokes are coalesced), e.g. when an attempt is created or resumed. It
// never blocks.
func (w *Watcher) Poke() {
	select {
	case w.poke <- struct{}{}:
	default:
	}
}

// Rescan makes the next poll look at the last day of mail again, for
// attempts registered after their canary may already have arrived.
func (w *Watcher) Rescan() {
	w.rescan.Store(true)
	w.Poke()
}

// State returns a snapshot of the watcher's state.
func (w *Watcher) State() WatchState {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state
}

func (w *Watcher) update(f func(*WatchState)) {
	w.mu.Lock()
	f(&w.state)
	w.mu.Unlock()
}

func (w *Watcher) setStatus(s WatchStatus) { w.update(func(st *WatchState) { st.Status = s }) }

// Run watches until ctx is done, reconnecting with exponential backoff
// (capped at 30 s, jittered) for as long as it takes; after a refused
// login the backoff starts at a minute and is capped at the mailbox's
// login_backoff_max (watch_auth.go). It returns nil when ctx is done.
func (w *Watcher) Run(ctx context.Context) error {
	if w.running.Swap(true) {
		return errors.New("watcher: Run called twice")
	}
	defer w.running.Store(false)
	defer w.setStatus(WatchStopped)

	failures := 0
	lastErr := ""
	for {
		start := time.Now()
		selected, err := w.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("session ended") // unreachable: sessions end on errors
		}
		if selected && time.Since(start) > backoffMax {
			failures = 0 // a session that lived is not part of a failure streak
		}
		wait := backoff(failures)
		failures++
		cause := loginFailure(err)
		if cause == "auth" {
			wait = w.refused(err)
		}
		msg := err.Error()
		w.update(func(st *WatchState) {
			if st.Connected || st.Since.IsZero() {
				st.Since = time.Now()
			}
			st.Status, st.Connected, st.Idle, st.LastError = WatchBackoff, false, false, msg
			if selected {
				st.Reconnects++
			}
		})
		if cause != "" && w.cfg.OnLoginFailure != nil {
			w.cfg.OnLoginFailure(cause)
		}
		// Repeating the same failure every 30 s would flood the log.
		level := slog.LevelWarn
		if msg == lastErr {
			level = slog.LevelDebug
		}
		lastErr = msg
		if cause == "auth" {
			w.log.Log(ctx, level, "imap login refused; waiting before the next try (otpprobe auth test or a reload retries at once)",
				"err", msg, "refusals", w.authStreak, "retry_in", wait.Round(time.Millisecond))
		} else {
			w.log.Log(ctx, level, "imap watcher disconnected", "err", msg, "retry_in", wait.Round(time.Millisecond))
		}
		if !w.waitRetry(ctx, wait) {
			return nil
		}
	}
}

// sleep waits d, or less if ctx ends first; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// backoff is 500ms·2ⁿ capped at 30s, with jitter in [d/2, d).
func backoff(n int) time.Duration {
	d := backoffMax
	if n < 6 {
		d = min(backoffMin<<n, backoffMax)
	}
	return d/2 + rand.N(d/2)
}

// session is one connection's life: connect, select, then poll and IDLE
// until the connection fails. selected reports whether SELECT succeeded.
func (w *Watcher) session(ctx context.Context) (selected bool, err error) {
	var s *watchSession
	defer func() {
		if s != nil && s.expired.Load() {
			err = fmt.Errorf("%w (server silent for %v)", err, w.cmdTimeout)
		}
	}()
	w.setStatus(WatchConnecting)
	// EXISTS arrives on the client's reader goroutine; commands issued from
	// there would deadlock, so the handler only signals.
	exists := make(chan struct{}, 1)
	handler := &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				select {
				case exists <- struct{}{}:
				default:
				}
			}
		},
	}

	setupCtx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	c, err := dialIMAP(setupCtx, w.cfg.Mailbox, w.cfg.Creds, handler)
	if err != nil {
		return false, err
	}
	w.loggedIn()
	defer c.Close()
	stopSetup := context.AfterFunc(setupCtx, func() { c.Close() })
	folder, trash, sel, err := w.open(setupCtx, c)
	if !stopSetup() && err == nil {
		err = w.fail(StageSelect, context.Cause(setupCtx))
	}
	if err != nil {
		return false, err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	useIdle := !w.cfg.NoIdle && c.Caps().Has(imap.CapIdle)
	w.update(func(st *WatchState) {
		st.Connected, st.Folder, st.Idle, st.UIDValidity, st.Since = true, folder, useIdle, sel.UIDValidity, time.Now()
	})
	w.log.Info("imap watcher connected", "actual_folder", folder, "trash", trash, "idle", useIdle,
		"uidvalidity", sel.UIDValidity, "uidnext", uint32(sel.UIDNext), "exists", sel.NumMessages)

	s = &watchSession{w: w, c: c, folder: folder, trash: trash, selExists: sel.NumMessages}
	if sel.UIDValidity != w.uidValidity {
		// First connection, or the folder was recreated and every UID we
		// knew is void: look at the last day again.
		if w.uidValidity != 0 {
			w.log.Warn("imap UIDVALIDITY changed; rescanning", "old", w.uidValidity, "new", sel.UIDValidity)
		}
		w.lastUID, w.backlog = 0, nil
		if err := s.rescan(ctx); err != nil {
			return true, err // uidValidity unchanged: the next connection rescans
		}
		w.uidValidity = sel.UIDValidity
		// Mail that arrived during the rescan has UIDs from UIDNEXT on.
		if sel.UIDNext > 0 && sel.UIDNext-1 > w.lastUID {
			w.lastUID = sel.UIDNext - 1
		}
	}
	// Mail appended while we were away has UIDs above lastUID: the first
	// poll finds it.
	noop, first := false, true
	for {
		if w.rescan.Swap(false) {
			if err := s.rescan(ctx); err != nil {
				w.rescan.Store(true)
				return true, err
			}
		}
		if err := s.poll(ctx, noop); err != nil {
			return true, err
		}
		if first {
			// Arrivals first, then the cleanup the last connection lost.
			first = false
			if err := s.retryBacklog(ctx); err != nil {
				return true, err
			}
		}
		var woke bool
		if useIdle {
			woke, err = s.idle(ctx, exists)
		} else {
			woke, err = s.wait(ctx, exists)
		}
		if err != nil {
			return true, err
		}
		// After an EXISTS the client already knows the new messages; after
		// a timer or a Poke, NOOP lets the server announce them first.
		noop = !woke
	}
}

func (w *Watcher) fail(stage string, err error) error {
	var ie *IMAPError
	if errors.As(err, &ie) {
		return err
	}
	return &IMAPError{Stage: stage, Mailbox: w.cfg.Mailbox.Name, Err: err}
}

// open resolves the watched folder (and the trash folder when cleanup
// moves canaries there) and selects it.
func (w *Watcher) open(ctx context.Context, c *imapclient.Client) (folder, trash string, sel *imap.SelectData, err error) {
	ff := &folderFinder{c: c}
	folder = w.cfg.Folder
	if strings.HasPrefix(folder, `\`) {
		role := imap.MailboxAttr(folder)
		if strings.EqualFold(folder, FolderJunk) && w.cfg.Mailbox.Junk != "" {
			folder = w.cfg.Mailbox.Junk
		} else if folder, err = ff.find(role); err != nil {
			return "", "", nil, w.fail(StageList, ctxErr(ctx, err))
		}
	}
	if cleanupOn(w.cfg.Mailbox) {
		trash = w.cfg.Mailbox.Trash
		if trash == "" {
			trash, err = ff.find(imap.MailboxAttrTrash)
			if errors.Is(err, ErrNoFolder) {
				trash, err = "", nil // expunge instead
			}
			if err != nil {
				return "", "", nil, w.fail(StageList, ctxErr(ctx, err))
			}
		}
	}
	sel, err = c.Select(folder, nil).Wait()
	if err != nil {
		return "", "", nil, w.fail(StageSelect, ctxErr(ctx, fmt.Errorf("%q: %w", folder, err)))
	}
	return folder, trash, sel, nil
}

// folderLabel names a configured folder for metrics and health: INBOX,
// "junk" for the \Junk role, or the folder's own name.
func folderLabel(folder string) string {
	if strings.EqualFold(folder, FolderJunk) {
		return "junk"
	}
	return folder
}

// loginFailure is the cause of a session that ended before it logged in:
// "auth" when the server refused the credentials, else the stage that
// failed (dial, tls, config); "" for a later failure.
func loginFailure(err error) string {
	var ie *IMAPError
	if !errors.As(err, &ie) {
		return ""
	}
	switch ie.Stage {
	case StageLogin:
		if credentialsRefused(ie.Err) {
			return "auth"
		}
		return "login"
	case StageDial, StageTLS, StageConfig:
		return ie.Stage
	}
	return ""
}

func cleanupOn(mb targets.Mailbox) bool { return mb.Cleanup == nil || *mb.Cleanup }

func (w *Watcher) pollEvery(idle bool) time.Duration {
	if w.cfg.PollEvery > 0 {
		return w.cfg.PollEvery
	}
	if idle {
		return defaultPollIdle
	}
	return defaultPoll
}
