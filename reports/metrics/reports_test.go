package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestReportsMetrics(t *testing.T) {
	m := New("eu-1")
	r := NewReports(m)
	r.InitNotifier("webhook:ops")
	r.Notified("webhook:ops", "ok")
	r.Notified("webhook:ops", "error")
	r.Notified("webhook:ops", "error")
	r.AlertChanged("OTPSenderDown", "page", true)
	r.AlertChanged("OTPSenderDown", "page", true)
	r.AlertChanged("OTPSenderDown", "page", false)
	r.AlertChanged("SomethingElse", "", true)
	r.SetSLO("otp-inbox", 0.995, 0.99, -1, map[string]float64{"5m": 2, "1h": 14.4})

	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	want := `
# HELP otpprobe_notifications_total Delivery attempts of queued notifications by notifier and result (ok, error).
# TYPE otpprobe_notifications_total counter
otpprobe_notifications_total{agent="eu-1",notifier="webhook:ops",result="error"} 2
otpprobe_notifications_total{agent="eu-1",notifier="webhook:ops",result="ok"} 1
# HELP otpprobe_slo_burn_rate Error-budget burn rate over a window (1 = spending exactly the budget).
# TYPE otpprobe_slo_burn_rate gauge
otpprobe_slo_burn_rate{agent="eu-1",slo="otp-inbox",window="1h"} 14.4
otpprobe_slo_burn_rate{agent="eu-1",slo="otp-inbox",window="30m"} 0
otpprobe_slo_burn_rate{agent="eu-1",slo="otp-inbox",window="3d"} 0
otpprobe_slo_burn_rate{agent="eu-1",slo="otp-inbox",window="5m"} 2
otpprobe_slo_burn_rate{agent="eu-1",slo="otp-inbox",window="6h"} 0
# HELP otpprobe_slo_error_budget_remaining_ratio Share of the SLO window's error budget left: 1 untouched, 0 spent, negative overspent.
# TYPE otpprobe_slo_error_budget_remaining_ratio gauge
otpprobe_slo_error_budget_remaining_ratio{agent="eu-1",slo="otp-inbox"} -1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"otpprobe_notifications_total", "otpprobe_slo_burn_rate", "otpprobe_slo_error_budget_remaining_ratio"); err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(r.alertsFiring.WithLabelValues("OTPSenderDown", "page")); got != 1 {
		t.Errorf("alerts_firing{OTPSenderDown,page} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(r.alertsFiring.WithLabelValues("other", "unknown")); got != 1 {
		t.Errorf("an unknown alert name is counted as other: %v", got)
	}
}
