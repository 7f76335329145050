package main

// A real verifier in the loop: `otpprobe once` sends canaries through the
// chain scripts/testservers.sh starts — Postfix submission signing with
// OpenDKIM, relaying to a receiving Postfix whose milter is rspamd,
// delivering into Dovecot — and the test serves the DNS rspamd asks. Every
// sending domain is healthy in a first round; then its world changes in
// its own way (a key removed behind a selector CNAME, an SPF include
// answering SERVFAIL, …) and a second round shows what otpprobe records
// from rspamd's verdicts. Start the servers with
//
//	scripts/testservers.sh up /tmp/otpprobe-ts
//	OTPPROBE_INTEROP_ENDPOINTS=/tmp/otpprobe-ts/endpoints.json go test ./cmd/otpprobe -run VerifierInterop
//
// (make test does both). Without the variable the test skips, except under
// CI=true, where it fails.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/lab/dnsserver"
)

// verifierDeadline bounds one canary's trip through two Postfixes,
// rspamd and Dovecot on a shared machine, DSN included.
const verifierDeadline = 90 * time.Second

func loadVerifier(t *testing.T) *lab.Endpoints {
	t.Helper()
	skip := func(why string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s (CI=true: interop tests must run; see scripts/testservers.sh)", why)
		}
		t.Skip(why)
	}
	path := os.Getenv("OTPPROBE_INTEROP_ENDPOINTS")
	if path == "" {
		skip("OTPPROBE_INTEROP_ENDPOINTS is not set: start the servers with scripts/testservers.sh up DIR")
	}
	ep, err := lab.LoadEndpoints(path)
	if err != nil {
		t.Fatal(err)
	}
	if v := ep.Verifier; v == nil || v.DNS == "" || v.DKIMTXT == "" {
		skip(path + ": no verifier chain (rspamd, OpenDKIM): scripts/testservers.sh up starts it")
	}
	if len(ep.Senders) == 0 {
		t.Fatalf("%s: no sender", path)
	}
	return ep
}

// verifierDomain is one sending domain, <name>.<verifier domain>, and the
// records of its healthy world.
type verifierDomain struct {
	v    *lab.Verifier
	name string
	// envelope is the MAIL FROM domain's first label below the domain
	// (an ESP's bounce subdomain); "" for the domain itself.
	envelope string
	cname    bool   // the selector is a CNAME into a tenant zone, as M365's are
	dmarc    string // the DMARC record
}

func (d verifierDomain) domain() string { return d.name + "." + d.v.Domain }
func (d verifierDomain) envelopeDomain() string {
	if d.envelope == "" {
		return d.domain()
	}
	return d.envelope + "." + d.domain()
}
func (d verifierDomain) selector() string { return d.v.Selector + "._domainkey." + d.domain() }

// keyName is where the selector's TXT lives: behind the CNAME, if any.
func (d verifierDomain) keyName() string {
	if d.cname {
		return d.v.Selector + "-" + d.name + "._domainkey.tenant." + d.v.Domain
	}
	return d.selector()
}

// spfInclude is the domain's ESP include, which lists the relay.
func (d verifierDomain) spfInclude() string { return "_spf." + d.name + ".esp." + d.v.Domain }

func (d verifierDomain) records() []string {
	rrs := []string{
		fmt.Sprintf("%s. 1 IN TXT %q", d.envelopeDomain(), "v=spf1 include:"+d.spfInclude()+" -all"),
		fmt.Sprintf("%s. 1 IN TXT %q", d.spfInclude(), "v=spf1 ip4:"+d.v.SourceIP+" -all"),
		fmt.Sprintf("_dmarc.%s. 1 IN TXT %q", d.domain(), d.dmarc),
		fmt.Sprintf("%s. 1 IN TXT %q", d.keyName(), d.v.DKIMTXT),
		fmt.Sprintf("%s. 1 IN A %s", d.domain(), d.v.SourceIP),
	}
	if d.cname {
		rrs = append(rrs, fmt.Sprintf("%s. 1 IN CNAME %s.", d.selector(), d.keyName()))
	}
	return rrs
}

// verifierConfig writes a config into dir with one sender per domain
// (From otp@<domain>, envelope bounces@<envelope domain>) and the chain's
// mailbox; dir keeps the store between rounds, so the second round's
// diagnoses know what the first one saw.
func verifierConfig(t *testing.T, ep *lab.Endpoints, dir string, doms []verifierDomain) string {
	t.Helper()
	v := ep.Verifier
	mb, bounces := v.Mailbox, v.Bounces
	mb.AuthservID = v.AuthservID
	e := &lab.Endpoints{DNS: v.DNS, CAFile: ep.CAFile, Mailboxes: []lab.Endpoint{mb}, Bounces: &bounces}
	for _, d := range doms {
		s := ep.Senders[0]
		s.Name = d.name
		s.From = "OTP <otp@" + d.domain() + ">"
		s.EnvelopeFrom = "bounces@" + d.envelopeDomain()
		e.Senders = append(e.Senders, s)
	}
	path, err := e.WriteConfig(lab.ConfigOptions{Dir: dir, Schedule: "@every 1h", Deadline: verifierDeadline,
		LatencySLO: verifierDeadline / 2, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// onceThrough runs `otpprobe once` and returns the attempts by sender.
func onceThrough(t *testing.T, config string, want int) map[string]onceAttempt {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*verifierDeadline)
	defer cancel()
	code, out, errOut := run(t, ctx, "once", "--config", config, "--format", "json")
	if code != exitOK && code != exitFailed {
		t.Fatalf("otpprobe once: exit %d\n%s\n%s", code, out, errOut)
	}
	var res onceJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("once JSON: %v\n%s\n%s", err, out, errOut)
	}
	got := map[string]onceAttempt{}
	for _, a := range res.Attempts {
		got[a.Sender] = a
		t.Logf("%s: %s folder=%q spf=%s dkim=%s dmarc=%s trusted=%v smtp=%d %q; %s", a.Sender, a.Outcome, a.Folder,
			a.Verdicts.SPF, a.Verdicts.DKIM, a.Verdicts.DMARC, a.Verdicts.Trusted, a.SMTP.Code, a.SMTP.Reply, a.Diagnosis)
	}
	if len(got) != want {
		t.Fatalf("%d attempts, want %d:\n%s", len(got), want, out)
	}
	return got
}

func TestVerifierInterop(t *testing.T) {
	ep := loadVerifier(t)
	v := ep.Verifier
	srv, err := dnsserver.Start(v.DNS)
	if err != nil {
		t.Fatalf("serving rspamd's DNS at %s: %v", v.DNS, err)
	}
	t.Cleanup(func() { srv.Close() })

	type verdicts struct{ spf, dkim, dmarc string }
	cases := []struct {
		dom verifierDomain
		// change is what happens to the domain's world between the rounds.
		change    func(d verifierDomain)
		outcome   string
		verdicts  verdicts // after the change; none for a bounce
		folder    string
		diagnosis []string // what the diagnosis must name
	}{{
		dom:      verifierDomain{name: "healthy", dmarc: "v=DMARC1; p=reject"},
		change:   func(verifierDomain) {},
		outcome:  "inbox",
		verdicts: verdicts{"pass", "pass", "pass"},
		folder:   "INBOX",
	}, {
		// The key behind M365's selector CNAME is gone; SPF still carries
		// DMARC, so the canary arrives with dkim failing.
		dom:       verifierDomain{name: "dkimcname", cname: true, dmarc: "v=DMARC1; p=none"},
		change:    func(d verifierDomain) { srv.Remove(d.keyName(), dns.TypeTXT) },
		outcome:   "inbox",
		verdicts:  verdicts{"pass", "none", "pass"},
		folder:    "INBOX",
		diagnosis: []string{"sel1._domainkey.dkimcname.verify.test is a CNAME to sel1-dkimcname._domainkey.tenant.verify.test", "no TXT"},
	}, {
		dom:       verifierDomain{name: "spfservfail", dmarc: "v=DMARC1; p=none"},
		change:    func(d verifierDomain) { srv.SetFault(d.spfInclude(), dnsserver.FaultServfail) },
		outcome:   "inbox",
		verdicts:  verdicts{"temperror", "pass", "pass"},
		folder:    "INBOX",
		diagnosis: []string{"_spf.spfservfail.esp.verify.test", "SERVFAIL"},
	}, {
		// SPF passes only for the ESP's bounce subdomain, which strict
		// alignment does not accept: with the DKIM key removed DMARC
		// fails and p=quarantine files the canary as spam.
		dom:       verifierDomain{name: "quarantine", envelope: "em", dmarc: "v=DMARC1; p=quarantine; aspf=s"},
		change:    func(d verifierDomain) { srv.Remove(d.keyName(), dns.TypeTXT) },
		outcome:   "spam",
		verdicts:  verdicts{"pass", "none", "fail"},
		folder:    "Junk Email",
		diagnosis: []string{"sel1._domainkey.quarantine.verify.test"},
	}, {
		// An M365 tenant's way of breaking: the selector CNAME's target
		// lost its key and SPF no longer lists the relay. DMARC fails,
		// rspamd rejects with 554 5.7.1 and the sending Postfix returns a
		// DSN.
		dom: verifierDomain{name: "reject", cname: true, dmarc: "v=DMARC1; p=reject"},
		change: func(d verifierDomain) {
			srv.Remove(d.keyName(), dns.TypeTXT)
			if err := srv.Set(d.domain(), dns.TypeTXT, fmt.Sprintf("%s. 1 IN TXT %q", d.domain(), "v=spf1 ip4:127.0.0.99 -all")); err != nil {
				t.Fatal(err)
			}
		},
		outcome:   "bounced",
		diagnosis: []string{"5.7.1", "sel1._domainkey.reject.verify.test", v.SourceIP},
	}}

	var doms []verifierDomain
	var rrs []string
	for i := range cases {
		cases[i].dom.v = v
		doms = append(doms, cases[i].dom)
		rrs = append(rrs, cases[i].dom.records()...)
	}
	if err := srv.Load(rrs); err != nil {
		t.Fatal(err)
	}
	config := verifierConfig(t, ep, t.TempDir(), doms)

	// Round one: every world healthy, every canary in the inbox with
	// SPF, DKIM and DMARC passing at rspamd.
	for name, a := range onceThrough(t, config, len(cases)) {
		if a.Outcome != "inbox" || !a.Verdicts.Trusted || a.Verdicts.SPF != "pass" || a.Verdicts.DKIM != "pass" || a.Verdicts.DMARC != "pass" {
			t.Errorf("round one, %s: %s trusted=%v spf=%s dkim=%s dmarc=%s, want inbox with all passing; %s", name, a.Outcome,
				a.Verdicts.Trusted, a.Verdicts.SPF, a.Verdicts.DKIM, a.Verdicts.DMARC, a.Diagnosis)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	for _, c := range cases {
		c.change(c.dom)
	}
	got := onceThrough(t, config, len(cases))
	for _, c := range cases {
		t.Run(c.dom.name, func(t *testing.T) {
			a := got[c.dom.name]
			if a.Outcome != c.outcome || a.Folder != c.folder {
				t.Errorf("outcome %s, folder %q; want %s, %q; %s", a.Outcome, a.Folder, c.outcome, c.folder, a.Diagnosis)
			}
			if c.verdicts != (verdicts{}) {
				if !a.Verdicts.Trusted {
					t.Errorf("verdicts not trusted (authserv-id %s)", v.AuthservID)
				}
				if g := (verdicts{a.Verdicts.SPF, a.Verdicts.DKIM, a.Verdicts.DMARC}); g != c.verdicts {
					t.Errorf("spf/dkim/dmarc %v, want %v", g, c.verdicts)
				}
			}
			for _, want := range c.diagnosis {
				if !strings.Contains(a.Diagnosis, want) {
					t.Errorf("diagnosis lacks %q: %s", want, a.Diagnosis)
				}
			}
		})
	}
}
