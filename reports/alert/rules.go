package alert

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/reports/rounds"
	"github.com/otpprobe/otpprobe/targets"
)

// Rules turns probe rounds into alerts: a sender down at every provider, a
// provider filing a sender's mail as spam, authentication verdicts that no
// longer pass. Each counts consecutive observations, so one odd message
// does not page anyone. ObserveRound is a rounds.Assembler subscriber.
type Rules struct {
	m    *Manager
	cfg  targets.Alerts
	log  *slog.Logger
	down map[string]int    // sender → consecutive rounds delivered nowhere
	spam map[[2]string]int // sender, provider → consecutive spam
	// verdict counts consecutive trusted non-pass results per sender,
	// provider and method.
	verdict map[[3]string]int
}

// NewRules returns the rules of cfg raising alerts through m.
func NewRules(m *Manager, cfg targets.Alerts) *Rules {
	if cfg.SenderDownRounds == 0 {
		cfg.SenderDownRounds = targets.DefaultSenderDownRounds
	}
	if cfg.SpamAttempts == 0 {
		cfg.SpamAttempts = targets.DefaultSpamAttempts
	}
	if cfg.VerdictAttempts == 0 {
		cfg.VerdictAttempts = targets.DefaultVerdictAttempts
	}
	return &Rules{m: m, cfg: cfg, log: m.log, down: map[string]int{}, spam: map[[2]string]int{}, verdict: map[[3]string]int{}}
}

// ObserveRound evaluates one sender's round.
func (r *Rules) ObserveRound(ctx context.Context, rd rounds.Round) {
	r.senderDown(ctx, rd)
	for _, a := range rd.Attempts {
		r.providerSpam(ctx, a)
		r.verdicts(ctx, a)
	}
}

func (r *Rules) senderDown(ctx context.Context, rd rounds.Round) {
	labels := map[string]string{"sender": rd.Sender, "severity": "page"}
	if rd.Delivered() {
		r.down[rd.Sender] = 0
		r.do(r.m.Resolve(ctx, SenderDown, labels, fmt.Sprintf("%s delivers to the inbox again", rd.Sender)))
		return
	}
	if len(rd.Undelivered()) < len(rd.Providers) {
		return // a partial round with too little to tell
	}
	r.down[rd.Sender]++
	if r.down[rd.Sender] < r.cfg.SenderDownRounds {
		return
	}
	r.do(r.m.Fire(ctx, Alert{Name: SenderDown, Labels: labels,
		Summary: fmt.Sprintf("%s delivered to no provider's inbox for %d consecutive rounds (%s)",
			rd.Sender, r.down[rd.Sender], strings.Join(rd.Providers, ", ")),
		Diagnosis: rd.Diagnosis(), Evidence: rd.Evidence()}))
}

func (r *Rules) providerSpam(ctx context.Context, a *attempt.Attempt) {
	prov := a.ProviderKey()
	k := [2]string{a.Sender, prov}
	labels := map[string]string{"sender": a.Sender, "provider": prov, "severity": "page"}
	switch a.Outcome {
	case attempt.OutcomeSpam:
		r.spam[k]++
		if r.spam[k] >= r.cfg.SpamAttempts {
			r.do(r.m.Fire(ctx, Alert{Name: ProviderSpam, Labels: labels,
				Summary:   fmt.Sprintf("%s files %s's OTP mail as spam (%d in a row)", prov, a.Sender, r.spam[k]),
				Diagnosis: rounds.Describe(a), Evidence: []string{a.ID}}))
		}
	case attempt.OutcomeInbox:
		r.spam[k] = 0
		r.do(r.m.Resolve(ctx, ProviderSpam, labels, fmt.Sprintf("%s delivers %s's mail to the inbox again", prov, a.Sender)))
	}
}

func (r *Rules) verdicts(ctx context.Context, a *attempt.Attempt) {
	v := a.Verdicts
	if !v.Trusted || (a.Outcome != attempt.OutcomeInbox && a.Outcome != attempt.OutcomeSpam) {
		return
	}
	prov := a.ProviderKey()
	for _, mv := range [...]struct{ method, result string }{{"spf", v.SPF}, {"dkim", v.DKIM}, {"dmarc", v.DMARC}} {
		k := [3]string{a.Sender, prov, mv.method}
		labels := map[string]string{"sender": a.Sender, "provider": prov, "method": mv.method, "severity": "ticket"}
		if strings.EqualFold(mv.result, "pass") {
			r.verdict[k] = 0
			r.do(r.m.Resolve(ctx, VerdictRegression, labels, fmt.Sprintf("%s passes %s at %s again", a.Sender, mv.method, prov)))
			continue
		}
		r.verdict[k]++
		if r.verdict[k] >= r.cfg.VerdictAttempts {
			result := mv.result
			if result == "" {
				result = "none"
			}
			r.do(r.m.Fire(ctx, Alert{Name: VerdictRegression, Labels: labels,
				Summary:   fmt.Sprintf("%s mail no longer passes %s at %s: %s=%s", a.Sender, mv.method, prov, mv.method, result),
				Diagnosis: rounds.Describe(a), Evidence: []string{a.ID}}))
		}
	}
}

func (r *Rules) do(err error) {
	if err != nil {
		r.log.Error("alert", "err", err)
	}
}

// RouteChanged keeps the RouteFailedOver alert in step with a route: firing
// while it sends through anything but its primary, resolved when it is back.
func (m *Manager) RouteChanged(ctx context.Context, route, primary, active, state, reason, diagnosis string, evidence []string) error {
	labels := map[string]string{"route": route, "severity": "page"}
	if active == primary {
		return m.Resolve(ctx, RouteFailedOver, labels, fmt.Sprintf("route %s is back on its primary %s: %s", route, primary, reason))
	}
	return m.Fire(ctx, Alert{Name: RouteFailedOver, Labels: labels,
		Summary:   fmt.Sprintf("route %s sends through %s instead of %s (%s): %s", route, active, primary, state, reason),
		Diagnosis: diagnosis, Evidence: evidence})
}
