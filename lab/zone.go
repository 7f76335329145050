package lab

import (
	"fmt"
	"strings"
)

// Record sets of the healthy world, in zone-file syntax. Scenarios edit the
// running DNS server; "healthy" loads these again.

// CustomerSPF is the customer's SPF record: both sending paths authorised.
const CustomerSPF = "v=spf1 include:" + M365SPFInclude + " include:" + BackupSPFInclude + " -all"

// CustomerDMARC is the customer's DMARC policy.
const CustomerDMARC = "v=DMARC1; p=reject; rua=mailto:" + DMARCRUAAddress

// M365SelectorTarget is where Microsoft 365 points a custom domain's DKIM
// selector CNAME: selectorN-<domain-with-dashes>._domainkey.<tenant>.
func M365SelectorTarget(selector string) string {
	return selector + "-" + strings.ReplaceAll(CustomerDomain, ".", "-") + "._domainkey." + TenantDomain
}

// DKIMName is the owner name of a selector's key record.
func DKIMName(selector, domain string) string { return selector + "._domainkey." + domain }

// zoneKeys are the DKIM public key records the world publishes.
type zoneKeys struct {
	m365Active string // TXT content for the active M365 selector
	backup     string // TXT content for the backup relay's selector
	forwarder  string // TXT content for the list forwarder's ARC selector
}

func txt(name, value string) string { return fmt.Sprintf("%s. 300 IN TXT %q", name, value) }
func a(name, ip string) string      { return fmt.Sprintf("%s. 300 IN A %s", name, ip) }
func mx(name string, pref int, host string) string {
	return fmt.Sprintf("%s. 300 IN MX %d %s.", name, pref, host)
}
func cname(name, target string) string { return fmt.Sprintf("%s. 300 IN CNAME %s.", name, target) }
func ptr(ip, host string) string {
	p := strings.Split(ip, ".")
	return fmt.Sprintf("%s.%s.%s.%s.in-addr.arpa. 300 IN PTR %s.", p[3], p[2], p[1], p[0], host)
}

// healthyZone is every record of the healthy world.
func healthyZone(k zoneKeys) []string {
	rrs := []string{
		// The customer: SPF through includes, DMARC p=reject, M365-style DKIM
		// CNAME delegation, and an MX for bounces and DMARC reports.
		txt(CustomerDomain, CustomerSPF),
		txt("_dmarc."+CustomerDomain, CustomerDMARC),
		cname(DKIMName(M365ActiveSelector, CustomerDomain), M365SelectorTarget(M365ActiveSelector)),
		cname(DKIMName(M365InactiveSelector, CustomerDomain), M365SelectorTarget(M365InactiveSelector)),
		// Microsoft publishes only the active selector's key.
		txt(M365SelectorTarget(M365ActiveSelector), k.m365Active),
		txt(DKIMName(BackupSelector, CustomerDomain), k.backup),
		mx(CustomerDomain, 10, BankMX),
		a(BankMX, BankMXIP),
		a(BankIMAP, BankMXIP),

		// The sending paths.
		txt(M365SPFInclude, "v=spf1 ip4:"+M365IP+" -all"),
		txt(BackupSPFInclude, "v=spf1 ip4:"+BackupIP+" -all"),
		a(M365SubmitHost, M365IP),
		a(M365RelayHelo, M365IP),
		ptr(M365IP, M365RelayHelo),
		a(BackupSubmitHost, BackupIP),
		a(BackupRelayHelo, BackupIP),
		ptr(BackupIP, BackupRelayHelo),

		// The mailbox providers.
		mx("gmail.test", 5, GmailMX),
		a(GmailMX, GmailIP),
		a(GmailIMAP, GmailIP),
		mx("yahoo.test", 1, YahooMX),
		a(YahooMX, YahooIP),
		a(YahooIMAP, YahooIP),
		mx("outlook.test", 10, OutlookMX),
		a(OutlookMX, OutlookIP),
		a(OutlookIMAP, OutlookIP),
		txt("_dmarc.gmail.test", "v=DMARC1; p=none"),

		// The list forwarder: its MX, SPF for its own address, ARC key.
		mx(ForwarderDomain, 10, ForwarderMX),
		a(ForwarderMX, ForwarderIP),
		ptr(ForwarderIP, ForwarderMX),
		txt(ForwarderDomain, "v=spf1 ip4:"+ForwarderIP+" -all"),
		txt(DKIMName(ForwarderSelector, ForwarderDomain), k.forwarder),

		// A marketing tool's SPF chain, published but not yet included by the
		// customer; spf-too-many-lookups adds the include in front. Evaluated
		// first it spends 10 lookups (its include, 4 nested includes, 5 a/mx),
		// so with the two sending paths the record needs 12 (RFC 7208 §4.6.4
		// allows 10) and evaluation ends in permerror for every sender.
		txt(MarketingInclude, "v=spf1 include:_spf1.marketing-tool.test include:_spf2.marketing-tool.test include:_spf3.marketing-tool.test include:_spf4.marketing-tool.test ~all"),
		txt("_spf1.marketing-tool.test", "v=spf1 ip4:198.51.100.0/26 a:mta1.marketing-tool.test ~all"),
		txt("_spf2.marketing-tool.test", "v=spf1 ip4:198.51.100.64/26 a:mta2.marketing-tool.test ~all"),
		txt("_spf3.marketing-tool.test", "v=spf1 ip4:198.51.100.128/26 a:mta3.marketing-tool.test ~all"),
		txt("_spf4.marketing-tool.test", "v=spf1 a:mta4.marketing-tool.test mx:marketing-tool.test ~all"),
		a("mta1.marketing-tool.test", "198.51.100.1"),
		a("mta2.marketing-tool.test", "198.51.100.65"),
		a("mta3.marketing-tool.test", "198.51.100.129"),
		a("mta4.marketing-tool.test", "198.51.100.193"),
		mx("marketing-tool.test", 10, "mta4.marketing-tool.test"),
	}
	return rrs
}
