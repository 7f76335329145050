// Package verify turns what a receiver wrote into verdicts a person can
// trust: Authentication-Results and ARC, provider spam signals, DKIM
// re-verification, DSNs, and the DNS posture behind them. It never touches
// the network except through an injected resolver.
package verify

// Verdicts is what the receiver said about one delivered canary.
// The summaries use RFC 8601 result words ("pass", "fail", "softfail",
// "neutral", "none", "temperror", "permerror", "policy"); "" means unknown.
type Verdicts struct {
	Trusted    bool   `json:"trusted"`     // a header from the configured authserv-id was found
	AuthservID string `json:"authserv_id"` // the authserv-id of the header summarised
	SPF        string `json:"spf"`
	DKIM       string `json:"dkim"`
	DMARC      string `json:"dmarc"`
	ARC        string `json:"arc"`

	// Results are the trusted header's results with every property.
	Results []Result `json:"results,omitempty"`
	// Untrusted are the other Authentication-Results headers, kept for
	// the record (RFC 8601 §5: they may have been forged by the sender).
	Untrusted []HeaderResults `json:"untrusted,omitempty"`
	ARCChain  *ARCChain       `json:"arc_chain,omitempty"`
	Spam      *SpamSignals    `json:"spam_signals,omitempty"`
	// DKIMRecheck is our own verification of each DKIM-Signature
	// (RecheckDKIM, RecheckDKIMHeader), next to the receiver's verdict.
	DKIMRecheck []DKIMCheck `json:"dkim_recheck,omitempty"`
	// Errors are the parse problems met; the rest was still read.
	Errors []string `json:"errors,omitempty"`
}
