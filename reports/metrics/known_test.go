package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestInitKnown: the counters rules take increase() of exist at 0 before
// their first event, so the first event after a start is an increase.
func TestInitKnown(t *testing.T) {
	m := New("eu-1")
	start := time.Unix(1795000000, 0)
	m.InitKnown(Known{
		Probes: []KnownProbe{{Name: "otp", Senders: []string{"m365"}, Providers: []string{"gmail"}, Interval: time.Minute, Deadline: 10 * time.Minute}},
		Routes: []KnownRoute{{Name: "otp", Senders: []string{"m365", "backup"}}},
	}, start)
	m.InitDNSSender("m365")
	const want = `
# HELP otpprobe_failovers_total Route switches from one sender to another.
# TYPE otpprobe_failovers_total counter
otpprobe_failovers_total{agent="eu-1",from="backup",route="otp",to="m365"} 0
otpprobe_failovers_total{agent="eu-1",from="m365",route="otp",to="backup"} 0
# HELP otpprobe_late_attempts_total Attempts delivered (inbox or spam) after the probe's latency SLO.
# TYPE otpprobe_late_attempts_total counter
otpprobe_late_attempts_total{agent="eu-1",probe="otp",provider="gmail",sender="m365"} 0
# HELP otpprobe_scheduler_skipped_runs_total Scheduled probe runs skipped because the previous run was still going.
# TYPE otpprobe_scheduler_skipped_runs_total counter
otpprobe_scheduler_skipped_runs_total{agent="eu-1",probe="otp"} 0
# HELP otpprobe_probe_interval_seconds Time between two scheduled runs of a probe (from its schedule).
# TYPE otpprobe_probe_interval_seconds gauge
otpprobe_probe_interval_seconds{agent="eu-1",probe="otp"} 60
# HELP otpprobe_probe_last_finished_timestamp_seconds When an attempt of the probe last got its final outcome; the process's start until the first does.
# TYPE otpprobe_probe_last_finished_timestamp_seconds gauge
otpprobe_probe_last_finished_timestamp_seconds{agent="eu-1",probe="otp"} 1795000000
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "otpprobe_failovers_total", "otpprobe_late_attempts_total",
		"otpprobe_scheduler_skipped_runs_total", "otpprobe_probe_interval_seconds", "otpprobe_probe_last_finished_timestamp_seconds"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.dnsChanges); n != len(dnsRecordKinds) {
		t.Errorf("%d dns_changes_total series for a checked sender, want %d", n, len(dnsRecordKinds))
	}
	if n := testutil.CollectAndCount(m.attempts); n != len(finalOutcomes) {
		t.Errorf("%d attempts_total series, want one per outcome (%d)", n, len(finalOutcomes))
	}
}
