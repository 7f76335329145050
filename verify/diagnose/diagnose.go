// Package diagnose names the most likely cause of one unhealthy attempt in
// one sentence, from what the prober itself observed: the submission's
// SMTP result, where and when the canary arrived, the receiver's verdicts
// and the DNS snapshot of the sending domain taken closest to it.
//
// It only says what the evidence supports. A provider that greylists
// answers 451 4.7.1 to the sender's relay, not to us: the prober sees a
// canary accepted by the provider long after submission (the Received
// chain's gap), so the diagnosis names the deferral and greylisting as its
// typical cause rather than claiming the code it never saw. A message
// accepted and then dropped looks the same whether the relay or the
// provider dropped it, and the diagnosis says so.
package diagnose

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/verify"
	"github.com/otpprobe/otpprobe/verify/dnscheck"
)

// Evidence is what is known about one decided attempt: the attempt as the
// engine decided it, and what the DNS watcher adds to it.
type Evidence struct {
	*attempt.Attempt

	// KnownSource and KnownSigners stand in for the header of a canary
	// that never arrived: the address and selectors earlier canaries of
	// the same sender came from and were signed with.
	KnownSource  string
	KnownSigners []Signature
	// KnownAt is when that earlier canary was delivered (zero: unknown).
	KnownAt time.Time

	// DNS is the sending domain's DNS report taken closest to the attempt;
	// nil when there is none.
	DNS *dnscheck.Report
	// Changes are the domain's RRsets seen changing at ChangedAt (the
	// last check that found any), to tell a record that broke from one
	// that was always wrong.
	Changes   []dnscheck.Change
	ChangedAt time.Time
}

// Healthy reports whether the attempt needs no diagnosis: in the inbox,
// in time, and no SPF/DKIM/DMARC verdict other than pass.
func Healthy(e Evidence) bool {
	return e.Outcome == attempt.OutcomeInbox && !e.Late && !AuthFailing(e)
}

// AuthFailing reports whether any of the SPF, DKIM and DMARC verdicts is
// known and not pass. A trusted Authentication-Results header without a
// method counts as none for it: Gmail writes no dmarc= at all when the
// From domain publishes no DMARC record.
func AuthFailing(e Evidence) bool {
	v := verdicts(e)
	return failing(v.SPF) || failing(v.DKIM) || failing(v.DMARC)
}

func failing(v string) bool { return v != "" && v != "pass" }

// verdicts returns e's verdicts with methods a trusted header left out
// as "none".
func verdicts(e Evidence) verify.Verdicts {
	v := e.Verdicts
	if v.Trusted {
		for _, p := range []*string{&v.SPF, &v.DKIM, &v.DMARC} {
			if *p == "" {
				*p = "none"
			}
		}
	}
	return v
}

// Diagnose returns the most likely cause of an unhealthy attempt as one
// sentence naming the record or the server at fault, and "" for a healthy
// attempt. Causes are tried from the earliest stage on: a canary that was
// never accepted or never arrived has no verdicts to explain.
func Diagnose(e Evidence) string {
	if Healthy(e) {
		return ""
	}
	switch e.Outcome {
	case attempt.OutcomeSendFailed:
		return sendFailure(e)
	case attempt.OutcomeLost:
		return lost(e)
	case attempt.OutcomeBounced:
		return bounced(e)
	}
	if s := authFailure(e); s != "" {
		return s
	}
	if e.Outcome == attempt.OutcomeSpam {
		return spam(e)
	}
	if e.Late {
		return late(e)
	}
	return fmt.Sprintf("The attempt ended %s without a cause the prober could see.", e.Outcome)
}

// sendFailure explains a submission the sender's server did not accept.
func sendFailure(e Evidence) string {
	reply := oneLine(e.SMTP.Reply)
	code := codeText(e.SMTP.Code, e.SMTP.Enhanced)
	lower := strings.ToLower(reply)
	switch e.SMTP.Stage {
	case "dial":
		switch {
		case strings.Contains(lower, "refused"):
			return fmt.Sprintf("The submission server of %s refused the connection (%s).", e.Sender, reply)
		case strings.Contains(lower, "timeout") || strings.Contains(lower, "deadline"):
			return fmt.Sprintf("The submission server of %s did not answer the connection (%s).", e.Sender, reply)
		case strings.Contains(lower, "no such host"):
			return fmt.Sprintf("The submission server name of %s does not resolve (%s).", e.Sender, reply)
		}
		return fmt.Sprintf("The submission server of %s could not be reached (%s).", e.Sender, reply)
	case "greeting", "ehlo", "helo":
		return fmt.Sprintf("The submission server of %s is not taking mail: it answered %s at %s and hung up (%s).", e.Sender, code, e.SMTP.Stage, reply)
	case "tls", "starttls":
		return fmt.Sprintf("TLS with the submission server of %s failed (%s).", e.Sender, reply)
	case "auth":
		switch {
		case e.SMTP.Enhanced == "5.7.139" || strings.Contains(lower, "basic authentication is disabled"):
			return fmt.Sprintf("SMTP AUTH Basic is disabled for the tenant of %s: it refused the password with %s (%s). "+
				"Log in with OAuth2 instead: auth.oauth2 with the app's client credentials (XOAUTH2), or send through Microsoft Graph (type: graph).",
				e.Sender, code, reply)
		case strings.Contains(lower, "token rejected"):
			return fmt.Sprintf("The submission server of %s refused our OAuth2 token with %s (%s).", e.Sender, code, reply)
		}
		return fmt.Sprintf("The submission server of %s rejected our credentials with %s (%s).", e.Sender, code, reply)
	case "token":
		return fmt.Sprintf("%s could not get an OAuth2 access token, so nothing was submitted (%s).", e.Sender, reply)
	case "submit": // Microsoft Graph sendMail; the code is the HTTP status
		switch c := e.SMTP.Code; {
		case c == 429:
			return fmt.Sprintf("Microsoft Graph throttled the sendMail of %s with HTTP 429 and asked it to wait before the next request (%s); "+
				"OTP mail sent through this app is delayed or refused while it lasts.", e.Sender, reply)
		case c == 401:
			return fmt.Sprintf("Microsoft Graph refused the access token of %s with HTTP 401 (%s).", e.Sender, reply)
		case c == 403:
			return fmt.Sprintf("Microsoft Graph denied %s with HTTP 403: the app lacks the Mail.Send application permission or an "+
				"application access policy excludes the mailbox (%s).", e.Sender, reply)
		case c >= 500:
			return fmt.Sprintf("Microsoft Graph failed the sendMail of %s with HTTP %d (%s).", e.Sender, c, reply)
		case c == 0:
			return fmt.Sprintf("Microsoft Graph could not be reached for %s (%s).", e.Sender, reply)
		}
		return fmt.Sprintf("Microsoft Graph refused the sendMail of %s with HTTP %d (%s).", e.Sender, e.SMTP.Code, reply)
	case "interrupted":
		return "otpprobe stopped during the submission and the canary never arrived."
	case "compose":
		return fmt.Sprintf("The canary could not be composed (%s).", reply)
	}
	verb := "rejected"
	if e.SMTP.Code >= 400 && e.SMTP.Code < 500 {
		verb = "deferred"
	}
	if e.SMTP.Stage == "" {
		return fmt.Sprintf("The submission to %s failed (%s).", e.Sender, reply)
	}
	return fmt.Sprintf("The submission server of %s %s the message at %s with %s (%s).", e.Sender, verb, strings.ToUpper(e.SMTP.Stage), code, reply)
}

func codeText(code int, enhanced string) string {
	switch {
	case code == 0 && enhanced != "":
		return "status " + enhanced
	case code == 0:
		return "no reply code"
	case enhanced == "":
		return fmt.Sprint(code)
	}
	return fmt.Sprintf("%d %s", code, enhanced)
}

// source is the address that delivered the canary, or the one earlier
// canaries came from; "" when unknown.
func source(e Evidence) string {
	if ip := SourceIP(e.Header); ip != nil {
		return ip.String()
	}
	return e.KnownSource
}

// lost: accepted, never seen, no bounce. Who dropped it is not observable,
// but when the sending domain's DNS breaks SPF, DKIM or DMARC for this
// sender's mail, a receiver enforcing DMARC most likely rejected it, and
// the DSN went to the envelope sender rather than to us.
func lost(e Evidence) string {
	if w := watcherDown(e); w != "" {
		return fmt.Sprintf("Not seen because otpprobe could not watch %s: %s. The canary may well have been delivered; this says nothing about %s's mail until the watcher is back.",
			e.Mailbox, w, e.Sender)
	}
	if fs := brokenForSender(e); len(fs) > 0 && !e.SubmittedAt.IsZero() {
		return fmt.Sprintf("Accepted by %s but never delivered to %s, most likely rejected under DMARC because %s",
			e.Sender, who(e), joinCauses(e, fs))
	}
	if e.SubmittedAt.IsZero() {
		return fmt.Sprintf("The submission to %s was cut off before its reply and the canary never reached %s.", e.Sender, e.Mailbox)
	}
	within := ""
	if e.DeadlineAfter() > 0 {
		within = " within " + round(e.DeadlineAfter())
	}
	return fmt.Sprintf("Accepted by %s (%s) but never delivered: it did not reach %s's inbox or junk folder%s and no bounce came back, so the sender's relay or %s dropped it.",
		e.Sender, firstWords(e.SMTP.Reply, 3), who(e), within, who(e))
}

// bounced: a DSN came back. Its Status, Diagnostic-Code and Remote-MTA
// are the receiver's own words; when the sending domain's DNS breaks
// authentication for this sender, every such record is named as the
// reason.
func bounced(e Evidence) string {
	head := fmt.Sprintf("%s bounced the canary", who(e))
	if r, mta, ok := dsnOf(e); ok {
		var parts []string
		if r.Status != "" {
			parts = append(parts, "Status "+r.Status)
		}
		if d := oneLine(r.DiagnosticCode); d != "" {
			parts = append(parts, "Diagnostic-Code "+strconv.Quote(d))
		}
		if r.RemoteMTA != "" {
			parts = append(parts, "Remote-MTA "+r.RemoteMTA)
		} else if mta != "" {
			parts = append(parts, "reported by "+mta)
		}
		if len(parts) > 0 {
			head += " (DSN " + strings.Join(parts, ", ") + ")"
		}
	} else {
		if e.SMTP.Code != 0 || e.SMTP.Enhanced != "" {
			head += " with " + codeText(e.SMTP.Code, e.SMTP.Enhanced)
		}
		if r := oneLine(e.SMTP.Reply); r != "" {
			head += " (" + r + ")"
		}
	}
	if fs := brokenForSender(e); len(fs) > 0 {
		return head + ", because " + joinCauses(e, fs)
	}
	return head + "."
}

// dsnOf reads the failed recipient of the DSN the engine kept in Detail
// ({"bounce":{"dsn":…}}); ok is false when there is none.
func dsnOf(e Evidence) (r verify.DSNRecipient, reportingMTA string, ok bool) {
	if e.Detail == "" {
		return r, "", false
	}
	var d struct {
		Bounce struct {
			DSN *verify.DSN `json:"dsn"`
		} `json:"bounce"`
	}
	if json.Unmarshal([]byte(e.Detail), &d) != nil || d.Bounce.DSN == nil || len(d.Bounce.DSN.Recipients) == 0 {
		return r, "", false
	}
	r = d.Bounce.DSN.Recipients[0]
	for _, x := range d.Bounce.DSN.Recipients {
		if strings.EqualFold(x.Action, "failed") || strings.HasPrefix(x.Status, "5.") {
			r = x
			break
		}
	}
	return r, d.Bounce.DSN.ReportingMTA, true
}

// brokenForSender are the critical SPF and DKIM findings that fail this
// sender's mail (its source address and selectors), SPF first, for a
// canary whose verdicts we never saw. DMARC findings are left out: a
// missing DMARC record rejects nothing.
func brokenForSender(e Evidence) []dnscheck.Finding {
	if e.DNS == nil {
		return nil
	}
	var out []dnscheck.Finding
	if f, ok := spfCause(e.DNS, source(e)); ok && f.Severity >= dnscheck.SeverityCritical {
		out = append(out, f)
	}
	// Findings about a selector count only when this sender's is known.
	if sigs := signers(e); len(sigs) > 0 {
		if f, ok := dkimCause(e.DNS, sigs); ok && f.Severity >= dnscheck.SeverityCritical {
			out = append(out, f)
		}
	}
	return out
}

// joinCauses writes findings as one clause each, with what changed.
func joinCauses(e Evidence, fs []dnscheck.Finding) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = strings.TrimSuffix(lowerFirst(withChange(e, f)), ".")
	}
	return strings.Join(parts, "; and ") + "."
}

// who names the mailbox, with its provider in brackets when that says
// more than the name: "gmail", "seed-1 (gmail)".
func who(e Evidence) string {
	m, p := e.Mailbox, e.Provider
	switch {
	case m == "":
		return p
	case p == "" || p == "generic" || strings.EqualFold(m, p):
		return m
	}
	return m + " (" + p + ")"
}

// authFailure explains a failing SPF, DKIM or DMARC verdict from the DNS
// report, choosing the finding about this attempt's source address and
// signing selector. SPF first, then DKIM, then DMARC: a DMARC failure
// usually follows from the other two.
func authFailure(e Evidence) string {
	v := verdicts(e)
	if !AuthFailing(e) {
		return ""
	}
	ip := source(e)
	sigs := signers(e)
	if causes := dnsCauses(e); len(causes) > 0 {
		parts := make([]string, len(causes))
		for i, c := range causes {
			where := ""
			if i == 0 {
				where = " at " + who(e)
			}
			parts[i] = fmt.Sprintf("%s=%s%s: %s", c.method, verdictOf(v, c.method), where, strings.TrimSuffix(withChange(e, c.f), "."))
		}
		return strings.Join(parts, "; ") + "."
	}
	// No DNS cause: say what the receiver said.
	for _, c := range []struct{ method, verdict string }{{"spf", v.SPF}, {"dkim", v.DKIM}, {"dmarc", v.DMARC}} {
		if !failing(c.verdict) {
			continue
		}
		why := resultDetail(v, c.method)
		where := ""
		switch c.method {
		case "spf":
			if ip != "" {
				where = " for " + ip
			}
		case "dkim":
			if len(sigs) > 0 {
				where = " for selector " + sigs[0].Selector + " of " + sigs[0].Domain
			}
		}
		dnsNote := "; the DNS records checked look sound"
		if e.DNS == nil {
			dnsNote = "; no DNS snapshot of the domain was available"
		}
		return fmt.Sprintf("%s reported %s=%s%s%s%s.", who(e), c.method, c.verdict, where, why, dnsNote)
	}
	return ""
}

// DNSCause returns the DNS finding behind the attempt's failing verdicts:
// SPF first, then DKIM, then DMARC, since a DMARC failure usually follows
// from the other two. ok is false when e.DNS is nil or holds no cause.
func DNSCause(e Evidence) (method string, f dnscheck.Finding, ok bool) {
	if cs := dnsCauses(e); len(cs) > 0 {
		return cs[0].method, cs[0].f, true
	}
	return "", dnscheck.Finding{}, false
}

type cause struct {
	method string
	f      dnscheck.Finding
}

// dnsCauses are the findings behind each failing verdict: SPF's and
// DKIM's (both, when both broke), DMARC's only when neither explains it.
func dnsCauses(e Evidence) []cause {
	if e.DNS == nil {
		return nil
	}
	v := verdicts(e)
	var out []cause
	if failing(v.SPF) {
		if f, ok := spfCause(e.DNS, source(e)); ok {
			out = append(out, cause{"spf", f})
		}
	}
	if failing(v.DKIM) {
		if f, ok := dkimCause(e.DNS, signers(e)); ok {
			out = append(out, cause{"dkim", f})
		}
	}
	if len(out) == 0 && failing(v.DMARC) {
		if f, ok := e.DNS.Cause("dmarc"); ok {
			out = append(out, cause{"dmarc", f})
		}
	}
	return out
}

func verdictOf(v verify.Verdicts, method string) string {
	switch method {
	case "spf":
		return v.SPF
	case "dkim":
		return v.DKIM
	}
	return v.DMARC
}

// spfCause picks the SPF finding that explains mail from ip: a source
// address finding only when it is about ip (never when ip is unknown).
func spfCause(r *dnscheck.Report, ip string) (dnscheck.Finding, bool) {
	for _, f := range r.Findings {
		if f.Severity < dnscheck.SeverityError || !strings.HasPrefix(f.Code, "spf.") {
			continue
		}
		if f.Code == "spf.source_not_authorised" && (ip == "" || !strings.HasPrefix(f.Data, ip+":")) {
			continue
		}
		return f, true
	}
	return dnscheck.Finding{}, false
}

// dkimCause picks the DKIM finding about a selector that signed the
// canary; any DKIM error when no signature was read.
func dkimCause(r *dnscheck.Report, sigs []Signature) (dnscheck.Finding, bool) {
	for _, f := range r.Findings {
		if f.Severity < dnscheck.SeverityError || !strings.HasPrefix(f.Code, "dkim.") {
			continue
		}
		if len(sigs) == 0 {
			return f, true
		}
		for _, s := range sigs {
			if strings.EqualFold(strings.TrimSuffix(f.Name, "."), s.Selector+"._domainkey."+s.Domain) {
				return f, true
			}
		}
	}
	return dnscheck.Finding{}, false
}

// resultDetail is the receiver's own reason for a method's result, as
// " (reason)", or "".
func resultDetail(v verify.Verdicts, method string) string {
	for _, r := range v.Results {
		if r.Method != method {
			continue
		}
		why := r.Reason
		if why == "" {
			why = r.Comment
		}
		if why != "" {
			return " (" + why + ")"
		}
	}
	return ""
}

// spam explains a canary filed as spam although SPF, DKIM and DMARC
// passed: with what the receiver's filter says about it where it says
// anything (rules and scores), so the person sees it is the content.
func spam(e Evidence) string {
	var said []string
	if s := e.Verdicts.Spam; s != nil {
		if r := s.Rspamd; r != nil {
			said = append(said, "rspamd at "+who(e)+" scored "+scoreOf(r.Score, r.Threshold)+topSymbols(r.Symbols))
		}
		if sa := s.SpamAssassin; sa != nil {
			t := ""
			if len(sa.Tests) > 0 {
				t = ": " + strings.Join(firstN(sa.Tests, 6), ", ")
			}
			said = append(said, "SpamAssassin at "+who(e)+" scored "+scoreOf(sa.Score, sa.Required)+t)
		}
		if m := s.Microsoft; m != nil {
			var parts []string
			if m.SFV != "" {
				parts = append(parts, "SFV="+m.SFV)
			}
			if m.SCL != nil {
				parts = append(parts, fmt.Sprintf("SCL=%d", *m.SCL))
			}
			if m.CAT != "" {
				parts = append(parts, "CAT="+m.CAT)
			}
			if m.BCL != nil {
				parts = append(parts, fmt.Sprintf("BCL=%d", *m.BCL))
			}
			if len(parts) > 0 {
				said = append(said, "Microsoft at "+who(e)+" says "+strings.Join(parts, " "))
			}
		}
	}
	if len(said) == 0 {
		return fmt.Sprintf("%s filed the canary as spam although SPF, DKIM and DMARC passed, without saying why: its content or the sender's reputation, not DNS.", who(e))
	}
	return fmt.Sprintf("%s filed the canary as spam although SPF, DKIM and DMARC passed: %s; its content or the sender's reputation, not DNS.", who(e), strings.Join(said, "; "))
}

// scoreOf is "7.5/15" (score/threshold), "7.5" or "?".
func scoreOf(score, threshold *float64) string {
	if score == nil {
		return "?"
	}
	if threshold == nil {
		return strconv.FormatFloat(*score, 'f', -1, 64)
	}
	return strconv.FormatFloat(*score, 'f', -1, 64) + "/" + strconv.FormatFloat(*threshold, 'f', -1, 64)
}

// topSymbols are the rules that added most to the score, as
// ": NAME 5.5, NAME 2.0"; rules that added nothing are left out.
func topSymbols(syms []verify.RspamdSymbol) string {
	var pos []verify.RspamdSymbol
	for _, s := range syms {
		if s.Score > 0 {
			pos = append(pos, s)
		}
	}
	slices.SortStableFunc(pos, func(a, b verify.RspamdSymbol) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return 0
	})
	if len(pos) == 0 {
		return ""
	}
	parts := make([]string, 0, 6)
	for _, s := range firstN(pos, 6) {
		parts = append(parts, s.Name+" "+strconv.FormatFloat(s.Score, 'f', 1, 64))
	}
	return ": " + strings.Join(parts, ", ")
}

func firstN[T any](xs []T, n int) []T {
	if len(xs) > n {
		return xs[:n]
	}
	return xs
}

// late tells where the time went: before the provider accepted the canary
// (the relay's first try failed: a deferral such as greylisting, or the MX
// was unreachable) or after (held inside the provider).
func late(e Evidence) string {
	latency := e.SeenAt.Sub(e.SubmittedAt)
	head := fmt.Sprintf("Delivered in %s (SLO %s)", round(latency), round(e.LatencySLO))
	if e.ReceivedAt.IsZero() || e.SubmittedAt.IsZero() || e.SeenAt.IsZero() {
		return head + "; the provider's Received header gives no time to tell where the delay was."
	}
	// The Received timestamp has 1 s resolution: give it that slack.
	transit := e.ReceivedAt.Add(time.Second).Sub(e.SubmittedAt)
	held := e.SeenAt.Sub(e.ReceivedAt)
	if transit > held {
		return fmt.Sprintf("%s: %s accepted it only about %s after submission, so the relay's first delivery try was deferred (typically 4xx greylisting such as 451 4.7.1) or could not connect, and a retry went through.",
			head, e.Provider, round(max(transit-time.Second, 0)))
	}
	return fmt.Sprintf("%s: %s accepted it at once but it reached the mailbox only %s later, held inside the provider.", head, e.Provider, round(held))
}

func round(d time.Duration) string {
	if d >= 10*time.Second {
		return d.Round(time.Second).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// withChange adds to a finding's message when its record was seen
// changing: it was different before, so someone or something changed it.
func withChange(e Evidence, f dnscheck.Finding) string {
	for _, c := range e.Changes {
		if c.Before == nil || !strings.EqualFold(c.Name, f.Name) {
			continue
		}
		before := c.Before.Rcode
		if len(c.Before.Data) > 0 {
			before = strings.Join(c.Before.Data, " | ")
			if len(before) > 80 {
				before = before[:79] + "…"
			}
			before = strconv.Quote(before)
		}
		gone := ""
		if c.After != nil && (c.After.Rcode == "NXDOMAIN" || (c.After.Rcode == "NOERROR" && len(c.After.Data) == 0)) {
			gone = " no longer exists: it"
		}
		return fmt.Sprintf("%s (%s %s%s changed at %s UTC; before: %s)", strings.TrimSuffix(f.Message, "."),
			strings.TrimSuffix(c.Name, "."), c.Type, gone, e.ChangedAt.UTC().Format("15:04:05"), before) + "."
	}
	if n := learnedNote(e, f); n != "" {
		return strings.TrimSuffix(f.Message, ".") + n + "."
	}
	return f.Message
}

// learnedNote says until when the address an SPF finding is about
// delivered our canaries: it was authorised then.
func learnedNote(e Evidence, f dnscheck.Finding) string {
	if f.Code != "spf.source_not_authorised" || e.KnownAt.IsZero() || e.KnownSource == "" || !strings.HasPrefix(f.Data, e.KnownSource+":") {
		return ""
	}
	return fmt.Sprintf(" (it delivered our canaries until %s UTC)", e.KnownAt.UTC().Format("15:04:05"))
}

func lowerFirst(s string) string {
	if s == "" || strings.HasPrefix(s, "SPF") || strings.HasPrefix(s, "DKIM") || strings.HasPrefix(s, "DMARC") {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// oneLine joins a reply's lines (multi-line SMTP replies, wrapped
// errors) with single spaces: a diagnosis is one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// firstWords shortens a reply for a sentence.
func firstWords(s string, n int) string {
	f := strings.Fields(s)
	if len(f) > n {
		return strings.Join(f[:n], " ") + " …"
	}
	return strings.Join(f, " ")
}

// signers are the selectors that signed the canary: the DKIM-Signature
// headers, plus the receiver's header.s where it names one.
func signers(e Evidence) []Signature {
	sigs := Signatures(e.Header)
	if e.Header == "" {
		sigs = slices.Clone(e.KnownSigners)
	}
	for _, r := range e.Verdicts.Results {
		s, d := strings.ToLower(r.Props["header.s"]), strings.ToLower(r.Props["header.d"])
		if r.Method != "dkim" || s == "" || d == "" {
			continue
		}
		if !slices.Contains(sigs, Signature{Domain: d, Selector: s}) {
			sigs = append(sigs, Signature{Domain: d, Selector: s})
		}
	}
	return sigs
}

// watcherDown is the reason the engine recorded in a lost attempt's
// Detail when a watcher of its mailbox had no connection at its deadline
// ("" otherwise): then lost means unseen, not undelivered.
func watcherDown(e Evidence) string {
	if e.Detail == "" {
		return ""
	}
	var d struct {
		Watcher *struct {
			Folder    string `json:"folder"`
			LastError string `json:"last_error"`
		} `json:"watcher_down"`
	}
	if json.Unmarshal([]byte(e.Detail), &d) != nil || d.Watcher == nil {
		return ""
	}
	return fmt.Sprintf("its %s watcher has no IMAP connection (%s)", d.Watcher.Folder, oneLine(d.Watcher.LastError))
}
