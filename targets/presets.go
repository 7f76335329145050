package targets

import "github.com/otpprobe/otpprobe/verify"

// Sender presets.
const PresetM365 = "m365"

// Mailbox providers.
const (
	ProviderGmail   = "gmail"
	ProviderYahoo   = "yahoo"
	ProviderOutlook = "outlook"
	ProviderGeneric = "generic"
)

// mailboxPreset is what a provider fills in when the config leaves it out.
// It pins no folder names: the junk and trash folders are found on the
// server by RFC 6154 special-use (\Junk, \Trash), because their names
// depend on the account's language and kind ("[Gmail]/Spam" or
// "[Gmail]/Bin", "Junk" or "Junk Email"); names are only the watcher's
// fallback, and a name in the config overrides both.
type mailboxPreset struct {
	host, authservID string
}

// Provider facts. Sources: each provider's published IMAP settings; the
// authserv-ids from headers of delivered mail. Marked unverified where we
// had no primary source at hand (no internet when this was written).
var mailboxPresets = map[string]mailboxPreset{
	ProviderGmail: {
		host:       "imap.gmail.com",
		authservID: "mx.google.com",
		// Expunging from INBOX on Gmail only drops the Inbox label (the
		// message stays in All Mail), so cleanup moves canaries to the
		// \Trash folder, which the watcher finds by special-use.
	},
	ProviderYahoo: {
		host: "imap.mail.yahoo.com",
		// Yahoo stamps the receiving host (mta1035.mail.sk1.yahoo.com,
		// atlas-production.v2.mail.bf2.yahoo.com, ...), which changes per
		// message, so the preset trusts any host under yahoo.com; see
		// MatchAuthservID. Unverified for 2026 traffic.
		authservID: "*.yahoo.com",
	},
	ProviderOutlook: {
		host: "outlook.office365.com",
		// Microsoft writes Authentication-Results without an authserv-id;
		// "none" trusts the topmost header that has none.
		authservID: AuthservNone,
	},
	ProviderGeneric: {},
}

func (c *Config) applyPresets() error {
	for i := range c.Senders {
		s := &c.Senders[i]
		switch s.Preset {
		case "":
		case PresetM365:
			// Microsoft 365 SMTP AUTH client submission.
			fill(&s.Host, "smtp.office365.com")
			fillInt(&s.Port, 587)
			fill(&s.TLS, TLSStartTLS)
			if s.Auth.TokenFile == "" && !s.Auth.TokenCommand.Set() && s.Auth.OAuth2 == nil {
				fill(&s.Auth.Mechanism, AuthLogin)
			}
		default:
			return errorf(field(item("senders", i, s.Name), "preset"), "unknown preset %q; want m365", s.Preset)
		}
	}
	for i := range c.Mailboxes {
		m := &c.Mailboxes[i]
		fill(&m.Provider, ProviderGeneric)
		p, ok := mailboxPresets[m.Provider]
		if !ok {
			return errorf(field(item("mailboxes", i, m.Name), "provider"),
				"must be gmail, yahoo, outlook or generic, got %q", m.Provider)
		}
		fill(&m.Host, p.host)
		if p.host != "" {
			fillInt(&m.Port, 993)
			fill(&m.TLS, TLSImplicit)
		}
		fill(&m.AuthservID, p.authservID)
	}
	return nil
}

func fill(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

func fillInt(dst *int, v int) {
	if *dst == 0 {
		*dst = v
	}
}

// AuthservNone is the authserv_id meaning "the receiver writes none"
// (Microsoft): the topmost Authentication-Results without one is trusted.
const AuthservNone = "none"

// MatchAuthservID reports whether an Authentication-Results header's
// authserv-id got is one of the configured want (verify.ParseAuthservIDs:
// a list of ids separated by commas or spaces, each equal ignoring case,
// "none" for a header without one, "*.example.com" for any host under
// example.com, and any of these with a "/JOBID" suffix).
func MatchAuthservID(want, got string) bool {
	return verify.MustAuthservIDs(want).Match(got)
}
