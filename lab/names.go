// Package lab is a small but real mail world in one process: an authoritative
// DNS server, an M365-like submission service and a backup relay that DKIM-sign
// and relay to MX hosts, Gmail/Yahoo/Outlook-like receivers that evaluate SPF,
// DKIM and DMARC against the lab DNS, and IMAP servers holding the seed
// mailboxes. Named scenarios change the world the way real incidents did.
//
// The lab never imports probe: the world does not know the prober exists.
package lab

// The names below are a contract: tests, generated configs and checks use them.
const (
	CustomerDomain = "example-bank.test"
	OTPFrom        = "otp@example-bank.test"
	// OTPFromHeader is the generated config's from: a display name, as
	// real senders write, so the canary's From is tested the way it ships.
	OTPFromHeader      = "Example Bänk <" + OTPFrom + ">"
	BounceAddress      = "bounces@example-bank.test"       // m365's envelope sender (and the default bounce mailbox)
	RelayBounceAddress = "relay-bounces@example-bank.test" // the backup relay's own envelope sender
	DMARCRUAAddress    = "dmarc@example-bank.test"
	TenantDomain       = "examplebank.onmicrosoft.test" // the M365 tenant's initial domain
	M365SPFInclude     = "spf.protection.outlook.test"
	BackupSPFInclude   = "spf.backup-relay.test"
	MarketingInclude   = "_spf.marketing-tool.test" // used by spf-too-many-lookups

	M365ActiveSelector   = "selector1" // Microsoft publishes only the active selector's TXT
	M365InactiveSelector = "selector2"
	BackupSelector       = "relay2026"

	// Loopback addresses: every host of the world has its own, so SPF sees
	// different senders on one machine.
	DNSIP          = "127.0.0.1"
	M365IP         = "127.0.0.11" // submission service and relay source address
	BackupIP       = "127.0.0.12"
	GmailIP        = "127.0.0.21"
	YahooIP        = "127.0.0.22"
	OutlookIP      = "127.0.0.23"
	BankMXIP       = "127.0.0.30" // example-bank.test MX: bounces@ and dmarc@
	ForwarderIP    = "127.0.0.40" // a mailing-list forwarder that ARC-seals
	IdentityIP     = "127.0.0.50" // the Entra-ID-like token endpoint
	GraphIP        = "127.0.0.51" // the Graph-like sendMail endpoint
	SeedLocalPart  = "seed"
	SeedPassword   = "seed-password" // lab only; never a real secret
	SenderUsername = "otp@example-bank.test"
)

// The M365 tenant's app registration the prober uses (client credentials).
const (
	TenantID     = "8c2f1e0a-5b4d-4e6f-9a7b-0c1d2e3f4a5b"
	M365ClientID = "3f6a9c2e-1b8d-4f7a-a0e5-6d4c2b1a9e8f"
	// OutlookClientID is the public client the outlook seed signed in to
	// (device code); ConsumersTenant is Microsoft's for personal accounts.
	OutlookClientID = "9e5f94bc-e8a4-4e73-b8be-63364c29d753"
	ConsumersTenant = "consumers"
)

// Sender names.
const (
	SenderM365   = "m365"
	SenderBackup = "backup"
)

// Provider (receiver) names.
const (
	ProviderGmail   = "gmail"
	ProviderYahoo   = "yahoo"
	ProviderOutlook = "outlook"
	ProviderBank    = "bank" // the customer's own mailbox host (bounces)
)

// Host names the world publishes in its DNS (and puts in its certificates).
const (
	M365SubmitHost   = "smtp.office365.test"              // submission service, A 127.0.0.11
	M365RelayHelo    = "mail-out.protection.outlook.test" // relay EHLO/PTR name
	BackupSubmitHost = "smtp.backup-relay.test"           // A 127.0.0.12
	BackupRelayHelo  = "out.backup-relay.test"
	GmailMX          = "gmail-smtp-in.l.google.test"
	YahooMX          = "mta5.am0.yahoodns.test"
	OutlookMX        = "outlook-test.mail.protection.outlook.test"
	BankMX           = "mx.example-bank.test"
	GmailIMAP        = "imap.gmail.test"
	YahooIMAP        = "imap.mail.yahoo.test"
	OutlookIMAP      = "outlook.office365.test"
	BankIMAP         = "imap.example-bank.test"
	IdentityHost     = "login.microsoftonline.test"
	GraphHost        = "graph.microsoft.test"
)

// The mailing-list forwarder (lab/forwarder): list@ForwarderDomain re-sends
// to ListMember with a tagged Subject and an ARC set sealed with
// ForwarderSelector; its SPF authorises ForwarderIP.
const (
	ForwarderDomain   = "lists.forwarder.test"
	ForwarderMX       = "mx.lists.forwarder.test"
	ForwarderSelector = "arc2026"
	ListAddress       = "list@lists.forwarder.test"
	ListMember        = "seed@gmail.test"
)
