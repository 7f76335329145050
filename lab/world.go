package lab

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/otpprobe/otpprobe/lab/dnsserver"
	"github.com/otpprobe/otpprobe/lab/forwarder"
	"github.com/otpprobe/otpprobe/lab/graph"
	"github.com/otpprobe/otpprobe/lab/identity"
	"github.com/otpprobe/otpprobe/lab/mailstore"
	"github.com/otpprobe/otpprobe/lab/receiver"
	"github.com/otpprobe/otpprobe/lab/sender"
	"github.com/otpprobe/otpprobe/verify"
	"github.com/otpprobe/otpprobe/verify/resolver"
)

// Options tune a world; the zero value is the standard lab.
type Options struct {
	Logger *slog.Logger
	// Dir receives the CA certificate file; empty means a temporary
	// directory removed by Close.
	Dir string
	// RetryInterval and RetryExpiry drive the senders' retry queues
	// (defaults 1s and 2m: a lab greylist clears in seconds).
	RetryInterval, RetryExpiry time.Duration
	// ProviderDelay is how long provider-delay holds yahoo's deliveries.
	ProviderDelay time.Duration
	// LossSource drives the flaky scenario's losses; tests seed it to make
	// them reproducible. Default: random.
	LossSource mrand.Source
	// TrashAfter is how long the providers keep a message in Trash
	// (default 2m: their 30 days in lab time); negative keeps it.
	TrashAfter time.Duration
}

// World is a running mail world. Start it, read Endpoints, Apply scenarios,
// Close it.
type World struct {
	opts     Options
	log      *slog.Logger
	ca       *CA
	caFile   string
	tmpDir   string
	dns      *dnsserver.Server
	resolver *resolver.Resolver
	healthy  []string

	senders     map[string]*sender.Server
	senderPws   map[string]string
	stores      map[string]*mailstore.Server // by provider
	profiles    map[string]receiver.Profile  // by provider
	seedPw      string
	mx          *receiver.Server
	forwarder   *forwarder.Server
	identity    *identity.Server
	graph       *graph.Server
	appSecret   string // the m365 app's client secret
	appCertFile string
	outlookRT   string // the seed's refresh token, as `otpprobe auth login` would have stored it
	paths       paths  // agents' own network paths to the senders (paths.go)

	mu             sync.Mutex
	applied        []string
	senderFaults   map[string]sender.Faults
	receiverFaults map[string]receiver.Faults
	identityFaults identity.Faults
}

// provider describes one receiving host of the world.
type provider struct {
	name, ip, mxHost, imapHost string
	profile                    receiver.Profile
}

func providers() []provider {
	return []provider{
		{ProviderGmail, GmailIP, GmailMX, GmailIMAP, receiver.Gmail()},
		{ProviderYahoo, YahooIP, YahooMX, YahooIMAP, receiver.Yahoo()},
		{ProviderOutlook, OutlookIP, OutlookMX, OutlookIMAP, receiver.Outlook()},
		{ProviderBank, BankMXIP, BankMX, BankIMAP, receiver.Bank()},
	}
}

// Start brings the whole world up on loopback. On error everything that
// started is stopped again.
func Start(ctx context.Context, opts Options) (_ *World, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RetryInterval == 0 {
		opts.RetryInterval = time.Second
	}
	if opts.RetryExpiry == 0 {
		opts.RetryExpiry = 2 * time.Minute
	}
	if opts.ProviderDelay == 0 {
		opts.ProviderDelay = defaultProviderDelay
	}
	w := &World{
		opts:           opts,
		log:            opts.Logger,
		senders:        map[string]*sender.Server{},
		senderPws:      map[string]string{},
		stores:         map[string]*mailstore.Server{},
		profiles:       map[string]receiver.Profile{},
		senderFaults:   map[string]sender.Faults{},
		receiverFaults: map[string]receiver.Faults{},
	}
	// Every error return below says "return nil, err": the cleanup closes
	// the local w, never the (nil) result.
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	if w.ca, err = NewCA(); err != nil {
		return nil, err
	}
	if err = w.writeCA(); err != nil {
		return nil, err
	}

	m365Key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	backupKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	var keys zoneKeys
	if keys.m365Active, err = sender.DKIMRecord(m365Key.Public()); err != nil {
		return nil, err
	}
	if keys.backup, err = sender.DKIMRecord(backupKey.Public()); err != nil {
		return nil, err
	}
	fwdKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	if keys.forwarder, err = sender.DKIMRecord(fwdKey.Public()); err != nil {
		return nil, err
	}
	w.healthy = healthyZone(keys)

	if w.dns, err = dnsserver.Start(net.JoinHostPort(DNSIP, "0")); err != nil {
		return nil, fmt.Errorf("lab dns: %w", err)
	}
	if err = w.dns.Load(w.healthy); err != nil {
		return nil, fmt.Errorf("lab dns zone: %w", err)
	}
	if w.resolver, err = resolver.New(resolver.Config{Servers: []string{w.dns.Addr()}, Timeout: time.Second, Retries: 1}); err != nil {
		return nil, err
	}

	if err = w.startReceivers(); err != nil {
		return nil, err
	}
	if err = w.startForwarder(fwdKey); err != nil {
		return nil, err
	}
	if err = w.startIdentity(); err != nil {
		return nil, err
	}
	if err = w.startSender(SenderM365, M365IP, M365SubmitHost, M365RelayHelo, M365ActiveSelector, sender.StyleM365, m365Key); err != nil {
		return nil, err
	}
	if err = w.startGraph(); err != nil {
		return nil, err
	}
	if err = w.startSender(SenderBackup, BackupIP, BackupSubmitHost, BackupRelayHelo, BackupSelector, sender.StyleRelay, backupKey); err != nil {
		return nil, err
	}
	w.applied = []string{Healthy}
	w.log.Info("lab world started", "dns", w.dns.Addr(), "mx_port", w.mx.Port())
	return w, nil
}

func (w *World) writeCA() error {
	dir := w.opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "otpprobe-lab-")
		if err != nil {
			return err
		}
		w.tmpDir, dir = d, d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	w.caFile = filepath.Join(dir, "lab-ca.pem")
	return os.WriteFile(w.caFile, w.ca.CertPEM(), 0o644)
}

// trashAfter is Options.TrashAfter with its default.
func (w *World) trashAfter() time.Duration {
	switch {
	case w.opts.TrashAfter < 0:
		return 0
	case w.opts.TrashAfter == 0:
		return 2 * time.Minute
	}
	return w.opts.TrashAfter
}

func (w *World) startReceivers() error {
	var hosts []receiver.Host
	for _, p := range providers() {
		tlsCfg, err := w.ca.ServerTLS(p.imapHost, p.ip)
		if err != nil {
			return err
		}
		mc := mailstore.Config{
			Addr:        net.JoinHostPort(p.ip, "0"),
			TLS:         tlsCfg,
			JunkFolder:  p.profile.JunkFolder,
			TrashFolder: p.profile.TrashFolder,
			TrashAfter:  w.trashAfter(),
		}
		if p.name == ProviderOutlook { // Outlook.com IMAP: OAuth2 (the lab also keeps PLAIN)
			mc.VerifyToken = w.verifyOutlookUser
		}
		st, err := mailstore.Start(mc)
		if err != nil {
			return fmt.Errorf("lab %s imap: %w", p.name, err)
		}
		w.stores[p.name] = st
		w.profiles[p.name] = p.profile
		hosts = append(hosts, receiver.Host{IP: p.ip, Profile: p.profile, Store: st})
	}
	w.seedPw = randomSecret()
	for name, st := range w.stores {
		users := []string{SeedLocalPart}
		if name == ProviderBank {
			users = []string{"bounces", "relay-bounces", "dmarc"}
		}
		for _, u := range users {
			if err := st.AddUser(u, w.seedPw); err != nil {
				return err
			}
		}
	}
	names := []string{}
	for _, p := range providers() {
		names = append(names, p.mxHost, p.ip)
	}
	tlsCfg, err := w.ca.ServerTLS(names...)
	if err != nil {
		return err
	}
	w.mx, err = receiver.Start(receiver.Config{
		Resolver:        w.resolver,
		TLS:             tlsCfg,
		Hosts:           hosts,
		MaxMessageBytes: 10 << 20,
		ReadTimeout:     time.Minute,
		Logger:          w.log.With("component", "receiver"),
	})
	if err != nil {
		return fmt.Errorf("lab receivers: %w", err)
	}
	return nil
}

// startForwarder runs the list forwarder on its own address at the shared
// MX port (the receiver owns only the providers' addresses).
func (w *World) startForwarder(key crypto.Signer) error {
	tlsCfg, err := w.ca.ServerTLS(ForwarderMX, ForwarderIP)
	if err != nil {
		return err
	}
	local, _, _ := strings.Cut(ListAddress, "@")
	w.forwarder, err = forwarder.Start(forwarder.Config{
		IP: ForwarderIP, Port: w.mx.Port(), Hostname: ForwarderMX, Domain: ForwarderDomain,
		Lists:      map[string][]string{local: {ListMember}},
		SubjectTag: "[list]",
		Sealer:     &verify.ARCSealer{Domain: ForwarderDomain, Selector: ForwarderSelector, Signer: key},
		Resolver:   w.resolver, TLS: tlsCfg, RootCAs: w.ca.Pool(),
		Logger: w.log.With("component", "forwarder"),
	})
	if err != nil {
		return fmt.Errorf("lab forwarder: %w", err)
	}
	return nil
}

func (w *World) startSender(name, ip, host, helo, selector string, style sender.Style, key crypto.Signer) error {
	tlsCfg, err := w.ca.ServerTLS(host, ip)
	if err != nil {
		return err
	}
	pw := randomSecret()
	cfg := sender.Config{
		Name:              name,
		ListenAddr:        net.JoinHostPort(ip, "0"),
		SourceIP:          ip,
		Hostname:          helo,
		Style:             style,
		TLS:               tlsCfg,
		RootCAs:           w.ca.Pool(),
		Username:          SenderUsername,
		Password:          pw,
		AllowedFromDomain: CustomerDomain,
		DKIM:              sender.DKIMConfig{Domain: CustomerDomain, Selector: selector, Signer: key},
		Resolver:          w.resolver,
		MXPort:            w.mx.Port(),
		RetryInterval:     w.opts.RetryInterval,
		RetryExpiry:       w.opts.RetryExpiry,
		MaxMessageBytes:   10 << 20,
		Logger:            w.log.With("component", "sender"),
	}
	if name == SenderM365 { // only M365 is ever flaky, and only M365 takes OAuth2
		cfg.LossSource = w.opts.LossSource
		cfg.VerifyToken = w.verifyOutlookToken(identity.RoleSMTPSend)
	}
	s, err := sender.Start(cfg)
	if err != nil {
		return fmt.Errorf("lab sender %s: %w", name, err)
	}
	w.senders[name] = s
	w.senderPws[name] = pw
	return nil
}

func randomSecret() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Endpoints tells a client how to reach this world.
func (w *World) Endpoints() *Endpoints {
	e := &Endpoints{DNS: w.dns.Addr(), CAFile: w.caFile}
	for _, s := range []struct{ name, envelope, bounces string }{
		{SenderM365, BounceAddress, ""}, {SenderBackup, RelayBounceAddress, "relay-bounces"},
	} {
		host, port := splitHostPort(w.senders[s.name].Addr())
		ep := Endpoint{Name: s.name, Host: host, Port: port, TLS: "starttls",
			Username: SenderUsername, Password: w.senderPws[s.name], From: OTPFromHeader, EnvelopeFrom: s.envelope, Bounces: s.bounces}
		if s.name == SenderM365 {
			ep.OAuth2 = &OAuth2App{Authority: w.identity.Authority(), Tenant: TenantID, ClientID: M365ClientID,
				ClientSecret: w.appSecret, CertFile: w.appCertFile, GraphURL: w.graph.URL()}
		}
		e.Senders = append(e.Senders, ep)
	}
	for _, p := range providers() {
		host, port := splitHostPort(w.stores[p.name].Addr())
		ep := Endpoint{Name: p.name, Provider: p.name, Host: host, Port: port, TLS: "starttls",
			Password: w.seedPw, AuthservID: p.profile.TrustID(), Junk: p.profile.JunkFolder, Trash: p.profile.TrashFolder}
		if p.name == ProviderBank {
			ep.Name, ep.Provider, ep.Address, ep.Username = "bounces", "generic", BounceAddress, "bounces"
			e.Bounces = &ep
			relay := ep
			relay.Name, relay.Address, relay.Username = "relay-bounces", RelayBounceAddress, "relay-bounces"
			e.RelayBounces = &relay
			continue
		}
		ep.Address = SeedLocalPart + "@" + p.name + ".test"
		ep.Username = SeedLocalPart
		if p.name == ProviderOutlook {
			ep.OAuth2 = &OAuth2App{Authority: w.identity.Authority(), Tenant: ConsumersTenant, ClientID: OutlookClientID,
				RefreshToken: w.outlookRT}
		}
		e.Mailboxes = append(e.Mailboxes, ep)
	}
	return e
}

func splitHostPort(addr string) (string, int) {
	h, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return h, n
}

// Resolver is a resolver that queries the world's DNS.
func (w *World) Resolver() *resolver.Resolver { return w.resolver }

// DNS is the world's authoritative DNS server.
func (w *World) DNS() *dnsserver.Server { return w.dns }

// CAFile is the path of the lab CA certificate (PEM).
func (w *World) CAFile() string { return w.caFile }

// CA is the lab's certificate authority.
func (w *World) CA() *CA { return w.ca }

// Store is the IMAP server of a provider (gmail, yahoo, outlook, bank).
func (w *World) Store(provider string) *mailstore.Server { return w.stores[provider] }

// Sender is a sending service (m365, backup).
func (w *World) Sender(name string) *sender.Server { return w.senders[name] }

// MXPort is the world's shared "port 25".
func (w *World) MXPort() int { return w.mx.Port() }

// Apply adds a scenario to the running world; "healthy" restores it.
// Scenarios compose: m365-outage then backup-outage takes both down.
func (w *World) Apply(name string) error {
	s, err := LookupScenario(name)
	if err != nil {
		return err
	}
	if err := s.apply(w); err != nil {
		return fmt.Errorf("scenario %s: %w", name, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if name != Healthy {
		if len(w.applied) == 1 && w.applied[0] == Healthy {
			w.applied = nil
		}
		w.applied = append(w.applied, name)
	}
	w.log.Info("lab scenario applied", "scenario", name)
	return nil
}

// Applied lists the scenarios in force, in the order applied.
func (w *World) Applied() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.applied...)
}

// Reset restores the healthy world: zone data, no faults anywhere.
func (w *World) Reset() error {
	if err := w.dns.Load(w.healthy); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, s := range w.senders {
		if err := s.SetFaults(sender.Faults{}); err != nil {
			return err
		}
		delete(w.senderFaults, name)
	}
	for _, p := range providers() {
		if err := w.mx.SetFaults(p.name, receiver.Faults{}); err != nil {
			return err
		}
		delete(w.receiverFaults, p.name)
		w.stores[p.name].SetOutage(false)
	}
	w.identityFaults = identity.Faults{}
	w.identity.SetFaults(w.identityFaults)
	w.graph.SetFaults(graph.Faults{})
	w.paths.reset()
	w.applied = []string{Healthy}
	return nil
}

func (w *World) setSenderFault(name string, change func(*sender.Faults)) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	f := w.senderFaults[name]
	change(&f)
	w.senderFaults[name] = f
	return w.senders[name].SetFaults(f)
}

func (w *World) setReceiverFault(provider string, change func(*receiver.Faults)) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	f := w.receiverFaults[provider]
	change(&f)
	w.receiverFaults[provider] = f
	return w.mx.SetFaults(provider, f)
}

// Close stops every server of the world.
func (w *World) Close() error {
	var errs []error
	w.paths.close()
	for _, s := range w.senders {
		errs = append(errs, s.Close())
	}
	if w.forwarder != nil {
		errs = append(errs, w.forwarder.Close())
	}
	if w.identity != nil {
		errs = append(errs, w.identity.Close())
	}
	if w.graph != nil {
		errs = append(errs, w.graph.Close())
	}
	if w.mx != nil {
		errs = append(errs, w.mx.Close())
	}
	for _, st := range w.stores {
		errs = append(errs, st.Close())
	}
	if w.dns != nil {
		errs = append(errs, w.dns.Close())
	}
	if w.tmpDir != "" {
		errs = append(errs, os.RemoveAll(w.tmpDir))
	}
	return errors.Join(errs...)
}
