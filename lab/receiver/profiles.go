package receiver

// Style is the way a provider writes its trace and authentication headers.
type Style int

const (
	// StylePlain is a generic RFC 8601 receiver (the bank's own MX).
	StylePlain Style = iota
	// StyleGmail: mx.google.com, "google.com: domain of … designates …"
	// comments on spf, header.i/header.s/header.b on dkim, and
	// "(p=REJECT sp=REJECT dis=NONE)" on dmarc; Received-SPF; a Received
	// header "by mx.google.com with ESMTPS id …" in Pacific time.
	StyleGmail
	// StyleYahoo: an "atlas-production…omega.yahoo.com" authserv-id,
	// bare values without comments, "dmarc=pass(p=REJECT)" with no space,
	// Yahoo's own "dkim=perm_fail" for signatures it cannot verify, a
	// trailing ";", and "Received: from IP (EHLO name) by 10.x.x.x with SMTPs".
	StyleYahoo
	// StyleMicrosoft: Exchange Online Protection. NO authserv-id (the field
	// starts with "spf=", go-msgauth #64), "(sender IP is …)" spf comments,
	// "dkim=… (signature was verified) header.d=…", "dmarc=… action=…",
	// compauth, no space after some ";" (as Microsoft writes it),
	// X-Forefront-Antispam-Report with SFV and SCL, and a "with Microsoft
	// SMTP Server … via Frontend Transport" Received header.
	StyleMicrosoft
)

// Action is what a receiver does with a message a policy applies to.
type Action int

const (
	// Deliver to the folder the spam score chooses.
	Deliver Action = iota
	// Junk delivers to the junk folder.
	Junk
	// Reject answers 5xx after DATA (the sender bounces it).
	Reject
	// Defer answers 4xx after DATA (the sender retries).
	Defer
	// AsFail evaluates a DMARC temperror as a DMARC fail (temperror only).
	AsFail
)

// Reply is an SMTP reply a policy gives.
type Reply struct {
	Code     int
	Enhanced [3]int
	Text     string // every "%s" is replaced by the From domain
}

// Profile is everything that makes one receiving provider look and act like
// the real one. Every field is documented with where its value comes from.
type Profile struct {
	// Name is the provider name (lab.ProviderGmail, …).
	Name string
	// Domain is the mail domain whose recipients this host accepts.
	Domain string
	// Hostname is the SMTP greeting name and the "by" host in Received.
	Hostname string
	// AuthservID starts the Authentication-Results field; empty for
	// Microsoft, which writes none (the prober's configured trust id for
	// Outlook is then the literal "none", see TrustID).
	AuthservID string
	// Style selects the header formats.
	Style Style
	// JunkFolder and TrashFolder are the special-use folders of the
	// provider's IMAP store.
	JunkFolder, TrashFolder string

	// OnReject applies when DMARC fails and the policy is p=reject.
	OnReject Action
	// RejectReply is sent when OnReject is Reject.
	RejectReply Reply
	// OnQuarantine applies when DMARC fails and the policy is p=quarantine.
	OnQuarantine Action
	// OnTempError applies when DMARC is temperror: Defer (answer
	// TempErrorReply) or AsFail (apply the published policy as for a fail).
	OnTempError Action
	// TempErrorReply is sent when OnTempError is Defer.
	TempErrorReply Reply

	// Spam score: points per signal; at or above JunkThreshold the message
	// goes to the junk folder.
	DKIMFailPoints int // a DKIM signature present but not passing
	SPFFailPoints  int // spf=fail or softfail
	UnauthPoints   int // no DMARC record and neither SPF nor DKIM passes
	JunkThreshold  int

	// TrustedARCSealers are the ARC sealers (d= of the ARC-Seal) whose
	// verified chain overrides a DMARC failure when the sealer had found
	// DMARC passing: Gmail honours ARC from forwarders it trusts.
	TrustedARCSealers []string
}

// Authserv-ids the prober must trust for each provider (the endpoints file's
// "authserv_id").
const (
	// GmailAuthservID is what Gmail writes on every inbound message.
	GmailAuthservID = "mx.google.com"
	// YahooAuthservID is one real Yahoo inbound host; Yahoo writes the
	// name of the "atlas" MTA that accepted the message. The lab uses one
	// fixed name so the prober can be configured to trust it.
	YahooAuthservID = "atlas-production.v2-mail-prod1-gq1.omega.yahoo.com"
	// MicrosoftTrustID is the trust id to configure for Outlook: Microsoft
	// writes no authserv-id at all, which verify/ records as "none".
	MicrosoftTrustID = "none"
)

// Gmail returns the Gmail-like profile. DMARC p=reject failures get
// "550 5.7.26" (Gmail's "Unauthenticated email from d is not accepted due to
// domain's DMARC policy"). A DKIM failure alone costs too few points to junk
// a DMARC-passing message.
func Gmail() Profile {
	return Profile{
		Name: "gmail", Domain: "gmail.test", Hostname: "mx.google.com",
		AuthservID: GmailAuthservID, Style: StyleGmail,
		JunkFolder: "[Gmail]/Spam", TrashFolder: "[Gmail]/Trash",
		OnReject: Reject,
		RejectReply: Reply{550, [3]int{5, 7, 26}, "Unauthenticated email from %s is not accepted due to domain's DMARC policy. " +
			"Please contact the administrator of %s domain if this was a legitimate mail. " +
			"To learn about the DMARC initiative, go to https://support.google.com/mail/?p=DmarcRejection"},
		OnQuarantine:   Junk,
		OnTempError:    AsFail,
		TempErrorReply: Reply{451, [3]int{4, 7, 26}, "Temporary DMARC evaluation error for %s; try again later"},
		DKIMFailPoints: 2, SPFFailPoints: 3, UnauthPoints: 5, JunkThreshold: 5,
		TrustedARCSealers: []string{"lists.forwarder.test"}, // the lab's list forwarder
	}
}

// Yahoo returns the Yahoo-like profile. DMARC p=reject failures get
// "554 5.7.9 Message not accepted for policy reasons" (Yahoo's documented
// reply for DMARC rejections).
func Yahoo() Profile {
	return Profile{
		Name: "yahoo", Domain: "yahoo.test", Hostname: "mta1001.mail.gq1.yahoo.com",
		AuthservID: YahooAuthservID, Style: StyleYahoo,
		JunkFolder: "Bulk", TrashFolder: "Trash",
		OnReject:       Reject,
		RejectReply:    Reply{554, [3]int{5, 7, 9}, "Message not accepted for policy reasons.  See https://senders.yahooinc.com/error-codes"},
		OnQuarantine:   Junk,
		OnTempError:    AsFail,
		TempErrorReply: Reply{451, [3]int{4, 7, 1}, "Resources temporarily unavailable; DMARC evaluation of %s failed, try again later"},
		DKIMFailPoints: 2, SPFFailPoints: 3, UnauthPoints: 5, JunkThreshold: 5,
	}
}

// Outlook returns the Outlook.com-like profile. Microsoft does not honour
// p=reject with a rejection: it delivers to Junk with "action=oreject"
// (override reject). Its filter weighs a DKIM failure enough to junk a
// message even when DMARC passes through SPF.
func Outlook() Profile {
	return Profile{
		Name: "outlook", Domain: "outlook.test", Hostname: "DM6NAM12FT034.mail.protection.outlook.com",
		AuthservID: "", Style: StyleMicrosoft,
		JunkFolder: "Junk Email", TrashFolder: "Deleted Items", // Microsoft 365 mailbox names
		OnReject:       Junk,
		RejectReply:    Reply{550, [3]int{5, 7, 509}, "Access denied, sending domain %s does not pass DMARC verification and has a DMARC policy of reject."},
		OnQuarantine:   Junk,
		OnTempError:    AsFail,
		TempErrorReply: Reply{451, [3]int{4, 7, 500}, "Server busy. Please try again later (DMARC temperror for %s)"},
		DKIMFailPoints: 5, SPFFailPoints: 5, UnauthPoints: 5, JunkThreshold: 5,
	}
}

// Bank returns the customer's own mailbox host (bounces@, dmarc@): a plain
// receiver that evaluates and records but junks nothing and rejects nothing.
func Bank() Profile {
	return Profile{
		Name: "bank", Domain: "example-bank.test", Hostname: "mx.example-bank.test",
		AuthservID: "mx.example-bank.test", Style: StylePlain,
		JunkFolder: "Junk", TrashFolder: "Trash",
		OnReject: Deliver, OnQuarantine: Deliver, OnTempError: AsFail,
		JunkThreshold: 1 << 30,
	}
}

// TrustID is the authserv-id the prober must be configured to trust for p.
func (p Profile) TrustID() string {
	if p.AuthservID == "" {
		return MicrosoftTrustID
	}
	return p.AuthservID
}

// Defaults are the world's receiving providers.
func Defaults() []Profile { return []Profile{Gmail(), Yahoo(), Outlook(), Bank()} }
