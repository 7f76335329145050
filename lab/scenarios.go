package lab

import (
	"fmt"
	"time"

	"github.com/miekg/dns"

	"github.com/otpprobe/otpprobe/lab/dnsserver"
	"github.com/otpprobe/otpprobe/lab/graph"
	"github.com/otpprobe/otpprobe/lab/identity"
	"github.com/otpprobe/otpprobe/lab/receiver"
	"github.com/otpprobe/otpprobe/lab/sender"
)

// Scenario changes the world the way a real incident did: DNS data,
// connections, queues. It never flips a verdict: receivers still evaluate
// SPF, DKIM and DMARC for real against whatever the DNS now says.
type Scenario struct {
	Name        string
	Description string
	apply       func(w *World) error
}

// Healthy is the scenario that restores the world.
const Healthy = "healthy"

var scenarios = []Scenario{
	{Healthy, "everything works: both senders authorised by SPF, DKIM keys published, DMARC p=reject", func(w *World) error { return w.Reset() }},
	{"m365-spf-include-servfail", "the SPF include target " + M365SPFInclude + " answers SERVFAIL: receivers see spf=temperror",
		func(w *World) error { w.dns.SetFault(M365SPFInclude, dnsserver.FaultServfail); return nil }},
	{"m365-dkim-txt-missing", "the TXT record behind the active selector's CNAME (" + M365SelectorTarget(M365ActiveSelector) + ") is gone: M365 mail fails DKIM",
		func(w *World) error { w.dns.Remove(M365SelectorTarget(M365ActiveSelector), dns.TypeTXT); return nil }},
	{"m365-spf-and-dkim-broken", "both of the above at once: M365 mail fails SPF and DKIM, so DMARC fails everywhere (the 2023 Microsoft 365 incident)",
		func(w *World) error {
			w.dns.SetFault(M365SPFInclude, dnsserver.FaultServfail)
			w.dns.Remove(M365SelectorTarget(M365ActiveSelector), dns.TypeTXT)
			return nil
		}},
	{"m365-dns-records-removed", "someone with zone access deleted the M365 path from " + CustomerDomain + ": its SPF include and both selector CNAMEs",
		func(w *World) error {
			w.dns.Remove(DKIMName(M365ActiveSelector, CustomerDomain), dns.TypeANY)
			w.dns.Remove(DKIMName(M365InactiveSelector, CustomerDomain), dns.TypeANY)
			return w.dns.Set(CustomerDomain+".", dns.TypeTXT, txt(CustomerDomain, "v=spf1 include:"+BackupSPFInclude+" -all"))
		}},
	{"dns-zone-broken", "someone replaced " + CustomerDomain + "'s SPF with -all and deleted every DKIM selector: both senders fail DMARC p=reject, gmail and yahoo bounce, outlook junks",
		func(w *World) error {
			for _, sel := range []string{M365ActiveSelector, M365InactiveSelector, BackupSelector} {
				w.dns.Remove(DKIMName(sel, CustomerDomain), dns.TypeANY)
			}
			return w.dns.Set(CustomerDomain+".", dns.TypeTXT, txt(CustomerDomain, "v=spf1 -all"))
		}},
	{"dmarc-record-removed", "_dmarc." + CustomerDomain + " was deleted: receivers report dmarc=none and apply no policy",
		func(w *World) error { w.dns.Remove("_dmarc."+CustomerDomain+".", dns.TypeTXT); return nil }},
	{"spf-too-many-lookups", "a marketing tool's include chain in front pushes SPF to 12 DNS lookups (limit 10): spf=permerror for every sender",
		func(w *World) error {
			return w.dns.Set(CustomerDomain+".", dns.TypeTXT, txt(CustomerDomain,
				"v=spf1 include:"+MarketingInclude+" include:"+M365SPFInclude+" include:"+BackupSPFInclude+" -all"))
		}},
	{"m365-outage", "the M365 submission service greets with 421 4.3.2 Service not available and hangs up",
		func(w *World) error {
			return w.setSenderFault(SenderM365, func(f *sender.Faults) { f.Outage = sender.Outage421 })
		}},
	{"m365-outage-refused", "the M365 submission service refuses TCP connections",
		func(w *World) error {
			return w.setSenderFault(SenderM365, func(f *sender.Faults) { f.Outage = sender.OutageRefuse })
		}},
	{"backup-outage", "the backup relay refuses connections",
		func(w *World) error {
			return w.setSenderFault(SenderBackup, func(f *sender.Faults) { f.Outage = sender.OutageRefuse })
		}},
	{"imap-outage", "gmail's IMAP service refuses connections (and drops the open ones): mail is delivered, but the prober cannot see it",
		func(w *World) error { w.stores[ProviderGmail].SetOutage(true); return nil }},
	{"provider-greylist", "outlook answers 451 4.7.1 to the first try of each message and accepts the retry",
		func(w *World) error {
			return w.setReceiverFault(ProviderOutlook, func(f *receiver.Faults) { f.Greylist = true })
		}},
	{"provider-delay", "yahoo holds every delivery for a while (ProviderDelay, default 12s) before it reaches the mailbox",
		func(w *World) error {
			return w.setReceiverFault(ProviderYahoo, func(f *receiver.Faults) { f.Delay = w.opts.ProviderDelay })
		}},
	{"provider-drop", "gmail accepts messages with 250 and never delivers them",
		func(w *World) error {
			return w.setReceiverFault(ProviderGmail, func(f *receiver.Faults) { f.Drop = true })
		}},
	{"m365-basic-auth-disabled", "the tenant turned SMTP AUTH with Basic authentication off: AUTH PLAIN and LOGIN are answered 535 5.7.139; XOAUTH2 still works",
		func(w *World) error {
			return w.setSenderFault(SenderM365, func(f *sender.Faults) { f.BasicAuthDisabled = true })
		}},
	{"oauth-secret-expired", "the prober's app's client secret expired: the token endpoint answers invalid_client AADSTS7000222 (the certificate credential still works)",
		func(w *World) error { return w.setIdentityFault(func(f *identity.Faults) { f.SecretExpired = true }) }},
	{"oauth-refresh-revoked", "every refresh token was revoked: the token endpoint answers invalid_grant AADSTS70008",
		func(w *World) error { return w.setIdentityFault(func(f *identity.Faults) { f.RefreshRevoked = true }) }},
	{"graph-throttled", "Microsoft Graph throttles sendMail: 429 ApplicationThrottled with Retry-After: 7",
		func(w *World) error {
			return w.setGraphFault(graph.Faults{Throttle: true, RetryAfter: 7 * time.Second})
		}},
	{"flaky", "the M365 service accepts every message but silently loses 10% of them",
		func(w *World) error {
			return w.setSenderFault(SenderM365, func(f *sender.Faults) { f.LossRate = 0.10 })
		}},
}

// Scenarios lists every scenario, healthy first.
func Scenarios() []Scenario {
	return append([]Scenario(nil), scenarios...)
}

// LookupScenario finds a scenario by name.
func LookupScenario(name string) (Scenario, error) {
	for _, s := range scenarios {
		if s.Name == name {
			return s, nil
		}
	}
	return Scenario{}, fmt.Errorf("unknown scenario %q (otpprobe lab scenarios lists them)", name)
}

// defaultProviderDelay is how long provider-delay holds yahoo's deliveries:
// past the lab probes' latency SLO, well before their deadline.
const defaultProviderDelay = 12 * time.Second
