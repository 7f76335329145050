package verify

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func spamFile(t *testing.T, name string) SpamSignals {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return ParseSpamSignals(header(t, string(b)))
}

func TestSpamMicrosoft(t *testing.T) {
	s := spamFile(t, "corpus/microsoft-163-forefront.eml")
	m := s.Microsoft
	if m == nil || m.SFV != "NSPM" || m.CAT != "NONE" || m.IPV != "NLI" || m.CIP != "123.126.97.3" {
		t.Fatalf("microsoft = %+v", m)
	}
	if *m.SCL != 1 || *m.OrgSCL != 1 || *m.BCL != 0 || m.PCL != nil {
		t.Errorf("SCL/OrgSCL/BCL/PCL = %v/%v/%v/%v", *m.SCL, *m.OrgSCL, *m.BCL, m.PCL)
	}
	if m.Report["DIR"] != "INB" || m.Report["CTRY"] != "CN" || !strings.HasPrefix(m.Report["SFS"], "(4636009)") {
		t.Errorf("report fields = %v", m.Report)
	}
	if spam, known := s.IsSpam(); spam || !known {
		t.Errorf("IsSpam = %v, %v", spam, known)
	}
	if len(s.Errors) != 0 {
		t.Errorf("errors: %v", s.Errors)
	}
}

func TestSpamMicrosoftJunk(t *testing.T) {
	// The field values Microsoft documents for a spoofed message sent to
	// Junk (CAT:SPOOF, SFV:SPM, SCL 5), with an IPv6 CIP.
	h := header(t, "X-Forefront-Antispam-Report: CIP:2001:db8::1;CTRY:DE;LANG:en;SCL:5;SRV:;IPV:NLI;SFV:SPM;H:contoso.com;PTR:InfoDomainNonexistent;CAT:SPOOF\n"+
		"X-Microsoft-Antispam: BCL:7;PCL:0;\n"+
		"X-MS-Exchange-Organization-SCL: 5\n\n")
	s := ParseSpamSignals(h)
	m := s.Microsoft
	if m.CIP != "2001:db8::1" || m.CAT != "SPOOF" || *m.SCL != 5 || *m.BCL != 7 || *m.PCL != 0 || m.Report["SRV"] != "" {
		t.Errorf("microsoft = %+v", m)
	}
	if spam, known := s.IsSpam(); !spam || !known {
		t.Errorf("IsSpam = %v, %v", spam, known)
	}
	bad := ParseSpamSignals(header(t, "X-MS-Exchange-Organization-SCL: high\n\n"))
	if len(bad.Errors) != 1 || !strings.Contains(bad.Errors[0], `X-MS-Exchange-Organization-SCL: SCL is "high", not a number`) {
		t.Errorf("errors = %v", bad.Errors)
	}
}

func TestSpamAssassin(t *testing.T) {
	s := spamFile(t, "spam/spamassassin-yes.eml")
	a := s.SpamAssassin
	if a == nil || !a.Spam || *a.Score != 5.0 || *a.Required != 5.0 || a.Autolearn != "no" || a.Version != "3.4.6" {
		t.Fatalf("spamassassin = %+v", a)
	}
	want := []string{"BAYES_50", "DKIM_SIGNED", "DKIM_VALID", "DKIM_VALID_AU", "DKIM_VALID_EF", "FREEMAIL_FROM", "FREEMAIL_REPLYTO",
		"FREEMAIL_REPLYTO_END_DIGIT", "RCVD_IN_DNSWL_NONE", "SPF_HELO_NONE", "SPF_PASS", "SUBJ_ALL_CAPS", "UNDISC_FREEM"}
	if !reflect.DeepEqual(a.Tests, want) {
		t.Errorf("tests = %v", a.Tests)
	}
	if spam, _ := s.IsSpam(); !spam {
		t.Error("not spam")
	}
	// Old "hits=" and a lone X-Spam-Flag.
	old := ParseSpamSignals(header(t, "X-Spam-Status: No, hits=-2.6 required=5.0 tests=BAYES_00 autolearn=ham\n\n"))
	if old.SpamAssassin.Spam || *old.SpamAssassin.Score != -2.6 {
		t.Errorf("old format = %+v", old.SpamAssassin)
	}
	if flag := ParseSpamSignals(header(t, "X-Spam-Flag: YES\n\n")); !flag.SpamAssassin.Spam {
		t.Error("X-Spam-Flag: YES not read")
	}
}

func TestRspamd(t *testing.T) {
	s := spamFile(t, "spam/rspamd-suse-no-action.eml")
	r := s.Rspamd
	if r == nil || *r.Spam || *r.Score != -4.51 || *r.Threshold != 50 || r.Action != "no action" {
		t.Fatalf("rspamd = %+v", r)
	}
	if len(r.Symbols) != 23 {
		t.Errorf("%d symbols, want 23", len(r.Symbols))
	}
	first, dkim := r.Symbols[0], r.Symbols[2]
	if first.Name != "BAYES_HAM" || first.Score != -3 || !reflect.DeepEqual(first.Options, []string{"100.00%"}) {
		t.Errorf("first symbol = %+v", first)
	}
	if dkim.Name != "R_DKIM_ALLOW" || !reflect.DeepEqual(dkim.Options, []string{"suse.de:s=susede2_rsa", "suse.de:s=susede2_ed25519"}) {
		t.Errorf("dkim symbol = %+v", dkim)
	}
	if spam, known := s.IsSpam(); spam || !known {
		t.Errorf("IsSpam = %v, %v", spam, known)
	}

	arc := spamFile(t, "spam/rspamd-lfdr-arc-reject.eml").Rspamd
	var found bool
	for _, sym := range arc.Symbols {
		if sym.Name == "ARC_REJECT" && sym.Score == 1 && reflect.DeepEqual(sym.Options, []string{"cv is fail on i=2"}) {
			found = true
		}
	}
	if !found || *arc.Score != -4.16 {
		t.Errorf("rspamd = %+v", arc)
	}
	rejected := ParseSpamSignals(header(t, "X-Rspamd-Action: add header\n\n"))
	if spam, _ := rejected.IsSpam(); !spam {
		t.Error("action add header is not spam")
	}
}

// Forged scores that encoding/json cannot write are reported, not kept.
func TestSpamNonFiniteScores(t *testing.T) {
	s := ParseSpamSignals(header(t, "X-Spam-Status: Yes, score=NaN required=+Inf\n"+
		"X-Spamd-Result: default: False [nan / Inf];\n SYM(-inf)\n\n"))
	if _, err := json.Marshal(s); err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	if s.SpamAssassin == nil || s.SpamAssassin.Score != nil || s.SpamAssassin.Required != nil {
		t.Errorf("spamassassin = %+v, want no score and no required", s.SpamAssassin)
	}
	if s.Rspamd == nil || s.Rspamd.Score != nil || s.Rspamd.Threshold != nil {
		t.Errorf("rspamd = %+v, want no score and no threshold", s.Rspamd)
	}
	if len(s.Errors) != 5 {
		t.Errorf("errors = %q, want one per non-finite number (5)", s.Errors)
	}
}

func TestProofpoint(t *testing.T) {
	s := spamFile(t, "spam/proofpoint-outbound.eml")
	if s.Proofpoint["rule"] != "outbound_notspam" || s.Proofpoint["spamscore"] != "0" || s.Proofpoint["authtc"] != "" {
		t.Errorf("proofpoint = %v", s.Proofpoint)
	}
	if spam, known := s.IsSpam(); spam || !known {
		t.Errorf("IsSpam = %v, %v", spam, known)
	}
}

func TestNoSpamSignals(t *testing.T) {
	s := ParseSpamSignals(header(t, "From: a@example.com\n\n"))
	if !s.Empty() {
		t.Errorf("signals = %+v", s)
	}
	if _, known := s.IsSpam(); known {
		t.Error("known without signals")
	}
}
