package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Reports holds the metrics of what results drive: alerts, notifications
// and SLOs (routes and failovers are on Metrics itself).
//
//	otpprobe_alerts_firing{alertname,severity}                          gauge
//	otpprobe_notifications_total{notifier,result}                       counter
//	otpprobe_slo_objective_ratio{slo}                                   gauge
//	otpprobe_slo_sli_ratio{slo}                                         gauge
//	otpprobe_slo_error_budget_remaining_ratio{slo}                      gauge
//	otpprobe_slo_burn_rate{slo,window}                                  gauge
type Reports struct {
	m             *Metrics
	alertsFiring  *prometheus.GaugeVec
	notifications *prometheus.CounterVec
	sloObjective  *prometheus.GaugeVec
	sloSLI        *prometheus.GaugeVec
	sloBudget     *prometheus.GaugeVec
	sloBurn       *prometheus.GaugeVec
}

// alertNames and alertSeverities are the fixed label sets of alerts_firing.
var (
	alertNames = []string{"OTPSenderDown", "OTPProviderSpam", "OTPAuthVerdictRegression", "OTPDeliverySLOBurn",
		"OTPRouteFailedOver", "OTPDNSRecordChanged", "OTPDNSCriticalFinding", "OTPCredentialsRefused"}
	alertSeverities = []string{"page", "ticket", "info"}
	burnWindows     = []string{"5m", "30m", "1h", "6h", "3d"}
	notifyResults   = []string{"ok", "error"}
)

// NewReports registers the report metrics with m's registry (agent label
// included). Call it once per Metrics.
func NewReports(m *Metrics) *Reports {
	w := m.Registerer()
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, labels)
		w.MustRegister(g)
		return g
	}
	r := &Reports{m: m,
		alertsFiring: gauge("alerts_firing", "Alerts otpprobe currently has firing, by name and severity.", "alertname", "severity"),
		sloObjective: gauge("slo_objective_ratio", "The SLO's objective as a ratio (0.995 for 99.5%).", "slo"),
		sloSLI:       gauge("slo_sli_ratio", "Good attempts over all decided attempts in the SLO's window, evaluated in process from the store.", "slo"),
		sloBudget: gauge("slo_error_budget_remaining_ratio",
			"Share of the SLO window's error budget left: 1 untouched, 0 spent, negative overspent.", "slo"),
		sloBurn: gauge("slo_burn_rate", "Error-budget burn rate over a window (1 = spending exactly the budget).", "slo", "window"),
	}
	r.notifications = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "notifications_total",
		Help: "Delivery attempts of queued notifications by notifier and result (ok, error)."}, []string{"notifier", "result"})
	w.MustRegister(r.notifications)
	for _, n := range alertNames {
		for _, s := range alertSeverities {
			r.alertsFiring.WithLabelValues(n, s)
		}
	}
	return r
}

// AlertChanged moves an alert in or out of alerts_firing.
func (r *Reports) AlertChanged(name, severity string, firing bool) {
	g := r.alertsFiring.WithLabelValues(oneOf(name, alertNames...), oneOf(severity, alertSeverities...))
	if firing {
		g.Inc()
	} else {
		g.Dec()
	}
}

// InitNotifier creates a notifier's series at zero.
func (r *Reports) InitNotifier(name string) {
	for _, res := range notifyResults {
		r.notifications.WithLabelValues(r.m.labels.value("notifier", name), res)
	}
}

// Notified counts one delivery attempt of a notification.
func (r *Reports) Notified(notifier, result string) {
	r.notifications.WithLabelValues(r.m.labels.value("notifier", notifier), oneOf(result, notifyResults...)).Inc()
}

// SetSLO records one SLO's evaluation; burn maps window names (5m, 30m,
// 1h, 6h, 3d) to rates.
func (r *Reports) SetSLO(name string, objective, sli, budgetRemaining float64, burn map[string]float64) {
	name = r.m.labels.value("slo", name)
	r.sloObjective.WithLabelValues(name).Set(objective)
	r.sloSLI.WithLabelValues(name).Set(sli)
	r.sloBudget.WithLabelValues(name).Set(budgetRemaining)
	for _, w := range burnWindows {
		r.sloBurn.WithLabelValues(name, w).Set(burn[w])
	}
}
