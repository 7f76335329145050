package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/probe"
	"github.com/otpprobe/otpprobe/targets"
	"github.com/otpprobe/otpprobe/token"
	"github.com/otpprobe/otpprobe/verify/diagnose"
)

// Sign-in flows of `auth login`.
const (
	flowDevice   = "device"   // RFC 8628 device code: Microsoft's, for a headless machine
	flowLoopback = "loopback" // authorization code + PKCE to http://127.0.0.1:PORT/: Google's
)

func cmdAuth(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "login":
			return cmdAuthLogin(ctx, args[1:], stdout, stderr)
		case "test":
			return cmdAuthTest(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintln(stderr, "usage: otpprobe auth login|test --config F --mailbox NAME|--sender NAME")
	return exitUsage
}

// account is the sender or mailbox an auth command is about.
type account struct {
	kind, name string // "mailbox" or "sender", its name
	auth       targets.Auth
	user       string // who signs in: the login name, or a Graph sender's mailbox
	graph      bool   // a Graph sender: tokens for Graph's audience
	mailbox    *targets.Mailbox
	sender     *targets.Sender
}

// accountFlags adds --config, --mailbox and --sender to fs.
func accountFlags(fs interface {
	String(name, value, usage string) *string
}) (cfg, mailbox, sender *string) {
	return fs.String("config", "", "config file (required)"),
		fs.String("mailbox", "", "the mailbox (mailboxes[].name) whose login to use"),
		fs.String("sender", "", "the sender (senders[].name) whose login to use")
}

// findAccount loads the config and picks the one account named by exactly
// one of mailbox and sender.
func findAccount(cmd, path, mailbox, sender string, stderr io.Writer) (*targets.Config, *account, int) {
	if (mailbox == "") == (sender == "") {
		fmt.Fprintf(stderr, "otpprobe %s: name exactly one of --mailbox NAME or --sender NAME\n", cmd)
		return nil, nil, exitUsage
	}
	cfg, code := loadConfig(path, cmd, stderr)
	if cfg == nil {
		return nil, nil, code
	}
	if mailbox != "" {
		mb, ok := cfg.Mailbox(mailbox)
		if !ok {
			fmt.Fprintf(stderr, "otpprobe %s: no mailbox named %q in %s\n", cmd, mailbox, path)
			return nil, nil, exitUsage
		}
		a := &account{kind: "mailbox", name: mb.Name, auth: mb.Auth, user: mb.Auth.Username, mailbox: mb}
		if !strings.Contains(a.user, "@") && mb.Address != "" {
			a.user = mb.Address // the account signs in with its address
		}
		return cfg, a, exitOK
	}
	s, ok := cfg.Sender(sender)
	if !ok {
		fmt.Fprintf(stderr, "otpprobe %s: no sender named %q in %s\n", cmd, sender, path)
		return nil, nil, exitUsage
	}
	a := &account{kind: "sender", name: s.Name, auth: s.Auth, user: s.Auth.Username, sender: s, graph: s.Type == targets.SenderGraph}
	if a.graph {
		a.user = s.User
	}
	return cfg, a, exitOK
}

func (a *account) String() string { return a.kind + " " + a.name }

func cmdAuthLogin(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("auth login", stderr)
	path, mailbox, sender := accountFlags(fs)
	flow := fs.String("flow", "", "device (default for microsoft) or loopback (default for google)")
	listen := fs.String("listen", "127.0.0.1:0", "loopback flow: where the browser is sent back to (a loopback address; a fixed port suits an SSH tunnel)")
	wait := fs.Duration("timeout", 15*time.Minute, "how long to wait for the person to sign in")
	if code, ok := parseFlagsOnly(fs, args, stderr); !ok {
		return code
	}
	_, acct, code := findAccount("auth login", *path, *mailbox, *sender, stderr)
	if acct == nil {
		return code
	}
	o := acct.auth.OAuth2
	switch {
	case o == nil:
		fmt.Fprintf(stderr, "otpprobe auth login: %s has no auth.oauth2: nothing to sign in to (auth test checks a password)\n", acct)
		return exitUsage
	case o.Flow != targets.FlowRefreshToken:
		fmt.Fprintf(stderr, "otpprobe auth login: %s uses the %s flow, which needs no sign-in (auth test checks it)\n", acct, o.Flow)
		return exitUsage
	}
	if *flow == "" {
		*flow = flowDevice
		if o.Provider == targets.OAuth2Google {
			*flow = flowLoopback
		}
	}
	if host, _, err := net.SplitHostPort(*listen); err != nil || !net.ParseIP(host).IsLoopback() {
		fmt.Fprintf(stderr, "otpprobe auth login: --listen %q: want a loopback address and port, e.g. 127.0.0.1:8765\n", *listen)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	l := &token.Login{OAuth2: o, Scopes: o.ScopesFor(acct.graph), User: acct.user}
	var res *token.Result
	var err error
	switch *flow {
	case flowDevice:
		l.Show = func(in token.Instructions) {
			fmt.Fprintf(stdout, "To let otpprobe use %s, sign in as %s:\n  open   %s\n  enter  %s\n", acct, orUnknown(acct.user), in.URL, in.Code)
			if !in.Expires.IsZero() {
				fmt.Fprintf(stdout, "The code expires at %s. Waiting for the sign-in…\n", in.Expires.UTC().Format("15:04 UTC"))
			}
		}
		res, err = l.Device(ctx)
	case flowLoopback:
		l.Show = func(in token.Instructions) {
			_, port, _ := net.SplitHostPort(*listen)
			fmt.Fprintf(stdout, "To let otpprobe use %s, sign in as %s: open this URL in a browser on this machine\n"+
				"(from another machine: ssh -L PORT:127.0.0.1:PORT to here, with a fixed --listen port%s):\n  %s\nWaiting for the browser to come back…\n",
				acct, orUnknown(acct.user), tunnelNote(port), in.URL)
		}
		res, err = l.Loopback(ctx, *listen)
	default:
		fmt.Fprintf(stderr, "otpprobe auth login: --flow %q: want device or loopback (Google retired the out-of-band copy-the-code flow in 2022)\n", *flow)
		return exitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "otpprobe auth login: %s: %v\n", acct, err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "Signed in. The refresh token is stored in %s (0600); otpprobe renews it from now on.\n", res.File)
	fmt.Fprintf(stdout, "Check it: otpprobe auth test --config %s --%s %s\n", *path, acct.kind, acct.name)
	return exitOK
}

func tunnelNote(port string) string {
	if port == "0" {
		return ", e.g. --listen 127.0.0.1:8765"
	}
	return ""
}

func orUnknown(s string) string {
	if s == "" {
		return "the account's user"
	}
	return s
}

func cmdAuthTest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("auth test", stderr)
	path, mailbox, sender := accountFlags(fs)
	wait := fs.Duration("timeout", time.Minute, "how long the token request and the login may take together")
	proberFlag := fs.String("prober", "", "after a mailbox's login worked, ask the otpprobe running at this URL to retry its refused logins now (default: http.listen of the config; none to skip)")
	if code, ok := parseFlagsOnly(fs, args, stderr); !ok {
		return code
	}
	cfg, acct, code := findAccount("auth test", *path, *mailbox, *sender, stderr)
	if acct == nil {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	if o := acct.auth.OAuth2; o != nil {
		src, err := token.Shared.For(o, acct.graph)
		if err == nil {
			_, err = src.Token(ctx)
		}
		if err != nil {
			fmt.Fprintf(stdout, "FAIL token: %s could not get an OAuth2 access token from %s: %v\n", acct, tokenEndpoint(o), err)
			return exitFailed
		}
		fmt.Fprintf(stdout, "ok   token: an access token for %s from %s (%s)\n", acct, tokenEndpoint(o), o.Flow)
	}
	var err error
	switch {
	case acct.graph:
		fmt.Fprintf(stdout, "ok   graph: %s needs nothing else to log in (Graph takes the token with each sendMail; nothing was sent)\n", acct)
	case acct.sender != nil:
		err = smtpLoginTest(ctx, acct, stdout)
	default:
		if err = imapLoginTest(ctx, acct, stdout); err == nil {
			base := *proberFlag
			if base == "" {
				base = proberURL(cfg.HTTP)
			}
			nudgeProber(ctx, base, cfg.HTTP, acct.name, stdout)
		}
	}
	if err != nil {
		return exitFailed
	}
	return exitOK
}

// tokenEndpoint names where o's tokens come from.
func tokenEndpoint(o *targets.OAuth2) string {
	if o.Provider == targets.OAuth2Google {
		return "Google"
	}
	return o.AuthorityURL()
}

func smtpLoginTest(ctx context.Context, acct *account, stdout io.Writer) error {
	s := acct.sender
	snd, err := probe.NewSender(*s, probe.CredentialsFor(s.Auth))
	if err != nil {
		fmt.Fprintf(stdout, "FAIL smtp %s: %v\n", s.Name, err)
		return err
	}
	addr := net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	mech, _, err := snd.Login(ctx)
	if err != nil {
		var se *probe.SendError
		a := &attempt.Attempt{Sender: s.Name, Outcome: attempt.OutcomeSendFailed, SMTP: attempt.SMTPResult{Stage: "send", Reply: err.Error()}}
		if errors.As(err, &se) {
			a.SMTP = attempt.SMTPResult{Stage: se.Stage, Code: se.Code, Enhanced: se.Enhanced, Reply: se.Error()}
		}
		fmt.Fprintf(stdout, "FAIL smtp %s at %s: %v\n     %s\n", s.Name, addr, err, diagnose.Diagnose(diagnose.Evidence{Attempt: a}))
		return err
	}
	if mech == "" {
		fmt.Fprintf(stdout, "ok   smtp %s: %s took the connection; no AUTH is configured (nothing was sent)\n", s.Name, addr)
		return nil
	}
	fmt.Fprintf(stdout, "ok   smtp %s: %s accepted AUTH %s as %s (nothing was sent)\n", s.Name, addr, mech, s.Auth.Username)
	return nil
}

func imapLoginTest(ctx context.Context, acct *account, stdout io.Writer) error {
	mb := acct.mailbox
	err := probe.CheckIMAPLogin(ctx, *mb, probe.CredentialsFor(mb.Auth))
	mech := mb.Auth.Mechanism
	if mech == "" {
		mech = "a password"
	}
	addr := mb.Host
	if mb.Port != 0 {
		addr = net.JoinHostPort(mb.Host, strconv.Itoa(mb.Port))
	}
	if err != nil {
		fmt.Fprintf(stdout, "FAIL imap %s at %s: %v\n", mb.Name, addr, err)
		return err
	}
	fmt.Fprintf(stdout, "ok   imap %s: %s accepted the login of %s with %s\n", mb.Name, addr, mb.Auth.Username, mech)
	return nil
}
