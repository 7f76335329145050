package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Known is what the config says will be measured: every label set a rule
// or dashboard panel may select is exported at 0 from the start, so
// increase() sees the first event after a restart and no alert needs
// absent(). The daemon builds it from the config.
type Known struct {
	Probes []KnownProbe
	Routes []KnownRoute
}

// KnownProbe is one probe: the senders and providers its attempts go
// through, and its timing (for the prober-stuck rule).
type KnownProbe struct {
	Name      string
	Senders   []string
	Providers []string
	Interval  time.Duration // time between two scheduled runs
	Deadline  time.Duration // the longest one attempt takes to be decided
}

// KnownRoute is a route and its senders, primary first.
type KnownRoute struct {
	Name    string
	Senders []string
}

// dnsRecordKinds are the record kinds dns_changes_total counts
// (dnswatch.RecordKind), besides "other".
var dnsRecordKinds = []string{"spf", "dkim", "dmarc", "mx", "mta-sts", "tls-rpt", "dane"}

// InitKnown exports every series of k at zero, and starts each probe's
// last-finished clock at now: "no attempt finished for a while" counts
// from the start, not from 1970.
func (m *Metrics) InitKnown(k Known, now time.Time) {
	for _, p := range k.Probes {
		name := m.labels.value("probe", p.Name)
		m.skippedRuns.WithLabelValues(name)
		for _, s := range p.Senders {
			for _, prov := range p.Providers {
				m.InitSeries(p.Name, s, prov)
				// "Time since the last inbox delivery" counts from the
				// start until the first one.
				m.setNewest(m.lastSuccess, "success", float64(now.UnixMilli())/1000, name, m.labels.value("sender", s), m.labels.value("provider", prov))
				// The SLI's good attempts: without this series, a sender
				// losing everything from the start has no error ratio.
				m.latency.WithLabelValues(m.labels.value("sender", s), m.labels.value("provider", prov), "INBOX")
				for _, method := range authMethods {
					m.authResults.WithLabelValues(m.labels.value("sender", s), m.labels.value("provider", prov), method, "pass")
				}
			}
		}
		m.probeInterval.WithLabelValues(name).Set(p.Interval.Seconds())
		m.probeDeadline.WithLabelValues(name).Set(p.Deadline.Seconds())
		m.mu.Lock()
		if _, ok := m.lastFinishedSet[name]; !ok {
			m.lastFinishedSet[name] = true
			m.lastFinished.WithLabelValues(name).Set(float64(now.UnixMilli()) / 1000)
		}
		m.mu.Unlock()
	}
	for _, r := range k.Routes {
		route := m.labels.value("route", r.Name)
		for _, from := range r.Senders {
			for _, to := range r.Senders {
				if from != to {
					m.failovers.WithLabelValues(route, m.labels.value("sender", from), m.labels.value("sender", to))
				}
			}
		}
	}
}

// InitDNSSender exports a DNS-checked sender's change counters at zero.
func (m *Metrics) InitDNSSender(sender string) {
	sender = m.labels.value("sender", sender)
	for _, kind := range dnsRecordKinds {
		m.dnsChanges.WithLabelValues(sender, kind)
	}
}

// finished moves a probe's last-finished clock to now.
func (m *Metrics) finished(probe string, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastFinishedSet[probe] = true
	m.lastFinished.WithLabelValues(probe).Set(float64(now.UnixMilli()) / 1000)
}

func newProbeGauges(gauge func(name, help string, labels ...string) *prometheus.GaugeVec) (interval, deadline, finished *prometheus.GaugeVec) {
	interval = gauge("probe_interval_seconds", "Time between two scheduled runs of a probe (from its schedule).", "probe")
	deadline = gauge("probe_deadline_seconds", "How long an attempt of a probe may take before it is lost.", "probe")
	finished = gauge("probe_last_finished_timestamp_seconds",
		"When an attempt of the probe last got its final outcome; the process's start until the first does.", "probe")
	return interval, deadline, finished
}

// SetConfigReload records the outcome of the last config load (at start
// or on SIGHUP) and when the running config was loaded.
func (m *Metrics) SetConfigReload(ok bool, loaded time.Time) {
	v := 0.0
	if ok {
		v = 1
	}
	m.reloadOK.WithLabelValues().Set(v)
	m.reloadAt.WithLabelValues().Set(float64(loaded.Unix()))
}

func newReloadGauges(gauge func(name, help string, labels ...string) *prometheus.GaugeVec) (ok, at *prometheus.GaugeVec) {
	ok = gauge("config_last_reload_successful",
		"1 when the last config load (start or SIGHUP) succeeded; 0 while the daemon runs an older config because the new one failed.")
	at = gauge("config_last_reload_success_timestamp_seconds", "When the running config was loaded (Unix seconds).")
	return ok, at
}
