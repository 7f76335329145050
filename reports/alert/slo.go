package alert

import (
	"context"
	"fmt"

	"github.com/otpprobe/otpprobe/reports/slo"
)

// ObserveSLOs fires or resolves an OTPDeliverySLOBurn alert per objective
// and burn severity (page, ticket), from an slo.Evaluator's statuses.
func (m *Manager) ObserveSLOs(ctx context.Context, statuses []slo.Status) {
	for _, s := range statuses {
		for _, severity := range []string{"page", "ticket"} {
			labels := map[string]string{"slo": s.Name, "severity": severity}
			var firing []slo.BurnAlert
			for _, a := range s.Alerts {
				if a.Severity == severity && a.Firing {
					firing = append(firing, a)
				}
			}
			var err error
			if len(firing) == 0 {
				err = m.Resolve(ctx, SLOBurn, labels, fmt.Sprintf("SLO %s burns its error budget slowly enough again", s.Name))
			} else {
				a := firing[0]
				err = m.Fire(ctx, Alert{Name: SLOBurn, Labels: labels,
					Summary: fmt.Sprintf("SLO %s burns its error budget %.1f× over %s and %.1f× over %s (threshold %g×); %.1f%% of the budget left",
						s.Name, s.BurnRates[a.Long], a.Long, s.BurnRates[a.Short], a.Short, a.Factor, 100*s.ErrorBudgetRemaining),
					Diagnosis: s.Description})
			}
			if err != nil {
				m.log.Error("alert", "err", err)
			}
		}
	}
}
