package receiver

import (
	"fmt"
	"strings"

	"github.com/emersion/go-msgauth/dmarc"
	"github.com/emersion/go-smtp"
)

// Decision is what a receiver does with an evaluated message.
type Decision struct {
	Action Action // Deliver, Junk, Reject or Defer
	Junk   bool   // deliver to the junk folder (Action Deliver or Junk)
	Score  int    // spam points
	// Disposition is the DMARC disposition applied: "none", "quarantine"
	// or "reject"; Gmail prints it as dis=, Microsoft as action=.
	Disposition string
	Reply       *smtp.SMTPError // for Reject and Defer
	Why         string          // one line for logs
}

// decide applies the profile's policy to the results. DMARC first (RFC 7489
// §6.6.4 leaves the receiver free to override, which the profiles do), then
// the spam score.
func decide(p Profile, r *Results) Decision {
	d := Decision{Disposition: "none"}
	dm := r.DMARC
	failed := dm.Value == ValFail
	if dm.Value == ValTempError {
		switch p.OnTempError {
		case Defer:
			d.Action = Defer
			d.Reply = reply(p.TempErrorReply, dm.FromDomain)
			d.Why = "dmarc temperror: defer"
			return d
		case AsFail:
			failed = dm.Record != nil // without a record there is no policy to apply
		}
	}
	arcOverride := failed && p.honours(r.ARC)
	if failed && !arcOverride {
		var act Action
		switch dm.Policy {
		case dmarc.PolicyReject:
			act, d.Disposition = p.OnReject, "reject"
		case dmarc.PolicyQuarantine:
			act, d.Disposition = p.OnQuarantine, "quarantine"
		}
		switch act {
		case Reject:
			d.Action, d.Reply, d.Why = Reject, reply(p.RejectReply, dm.FromDomain), "dmarc "+dm.Value+" p="+string(dm.Policy)+": reject"
			return d
		case Defer:
			d.Action, d.Reply, d.Why = Defer, reply(p.TempErrorReply, dm.FromDomain), "dmarc "+dm.Value+" p="+string(dm.Policy)+": defer"
			return d
		case Junk:
			d.Action, d.Junk, d.Why = Junk, true, "dmarc "+dm.Value+" p="+string(dm.Policy)+": junk"
			return d
		}
		if d.Disposition != "none" {
			d.Disposition = "none" // the profile overrode the policy to plain delivery
		}
	}

	if len(r.DKIM) > 0 && !r.DKIMPass() {
		d.Score += p.DKIMFailPoints
	}
	if r.SPF.Value == ValFail || r.SPF.Value == ValSoftFail {
		d.Score += p.SPFFailPoints
	}
	if dm.Value != ValPass && r.SPF.Value != ValPass && !r.DKIMPass() {
		d.Score += p.UnauthPoints
	}
	d.Action = Deliver
	d.Junk = d.Score >= p.JunkThreshold
	d.Why = fmt.Sprintf("score %d/%d", d.Score, p.JunkThreshold)
	if arcOverride {
		d.Why += ", dmarc fail overridden by arc=pass from " + r.ARC.Sealer
	}
	return d
}

func reply(r Reply, domain string) *smtp.SMTPError {
	return &smtp.SMTPError{
		Code:         r.Code,
		EnhancedCode: smtp.EnhancedCode(r.Enhanced),
		Message:      strings.ReplaceAll(r.Text, "%s", domain),
	}
}
