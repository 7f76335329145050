package main

import (
	"context"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/verify"
)

// dkimRecheck is the engine Enricher that re-verifies every delivered
// canary's DKIM signatures ourselves, next to the receiver's verdict: over
// the whole message when the watcher fetched its text, else over the
// header block alone (the body hash unchecked).
func dkimRecheck(lookup verify.LookupTXT) func(context.Context, *attempt.Attempt) {
	return func(ctx context.Context, a *attempt.Attempt) {
		switch {
		case a.Header == "":
		case a.Body != "":
			a.Verdicts.DKIMRecheck = verify.RecheckDKIM(ctx, lookup, []byte(a.Header+a.Body))
		default:
			a.Verdicts.DKIMRecheck = verify.RecheckDKIMHeader(ctx, lookup, []byte(a.Header))
		}
	}
}
