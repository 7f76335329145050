package receiver

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/emersion/go-message/textproto"

	"github.com/otpprobe/otpprobe/verify"
)

// ARCResult is the receiver's validation of a message's ARC chain (RFC 8617
// §5.2, signatures checked against the lab DNS) and what the newest sealer
// recorded.
type ARCResult struct {
	Value    string // pass, fail; "" when the message has no ARC set
	Sealer   string // d= of the newest ARC-Seal
	Instance int
	Reason   string            // why it failed
	Found    map[string]string // the newest AAR's spf/dkim/dmarc results
	Domains  map[string]string // their domains: spfdomain, dkdomain, fromdomain
}

func checkARC(ctx context.Context, res Resolver, h textproto.Header, msg []byte) ARCResult {
	chain := verify.ParseARC(h)
	if chain.Instances == 0 && chain.CV == "none" {
		return ARCResult{}
	}
	chain = verify.VerifyARC(ctx, verify.ARCValidator{Lookup: res.LookupTXT}, bytes.NewReader(msg), chain)
	out := ARCResult{Value: ValFail, Instance: chain.Instances, Reason: chain.Error,
		Found: map[string]string{}, Domains: map[string]string{}}
	if chain.CV == "pass" {
		out.Value = ValPass
	}
	if n := len(chain.Sets); n > 0 {
		last := chain.Sets[n-1]
		out.Sealer = strings.ToLower(last.AS["d"])
		for _, r := range last.AAR.Results {
			if _, seen := out.Found[r.Method]; seen {
				continue
			}
			out.Found[r.Method] = verify.Normalize(r.Result)
			switch r.Method {
			case "spf":
				d := r.Prop("smtp.mailfrom")
				out.Domains["spfdomain"] = strings.ToLower(d[strings.LastIndexByte(d, '@')+1:])
			case "dkim":
				out.Domains["dkdomain"] = verify.DKIMDomain(r)
			case "dmarc":
				out.Domains["fromdomain"] = strings.ToLower(r.Prop("header.from"))
			}
		}
	}
	return out
}

// honours reports whether p overrides a DMARC failure because a sealer it
// trusts passed the chain and had found DMARC passing (what Gmail does for
// mailing lists and forwarders it trusts).
func (p Profile) honours(a ARCResult) bool {
	if a.Value != ValPass || a.Found["dmarc"] != ValPass {
		return false
	}
	for _, s := range p.TrustedARCSealers {
		if strings.EqualFold(s, a.Sealer) {
			return true
		}
	}
	return false
}

// gmailARC is Gmail's arc= result: "arc=pass (i=1 spf=pass spfdomain=…
// dkim=pass dkdomain=… dmarc=pass fromdomain=…)".
func gmailARC(a ARCResult) string {
	if a.Value != ValPass {
		return "arc=" + a.Value
	}
	s := fmt.Sprintf("arc=pass (i=%d", a.Instance)
	for _, m := range [][2]string{{"spf", "spfdomain"}, {"dkim", "dkdomain"}, {"dmarc", "fromdomain"}} {
		if v, ok := a.Found[m[0]]; ok {
			s += fmt.Sprintf(" %s=%s %s=%s", m[0], v, m[1], clean(a.Domains[m[1]]))
		}
	}
	return s + ")"
}
