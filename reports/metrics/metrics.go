// Package metrics exposes what otpprobe measures to Prometheus, from a
// private registry, under the namespace otpprobe. Every series carries a
// constant agent label (this instance's name), so agents in several regions
// can be told apart. Label values come from the config (probe, sender,
// provider, mailbox, folder, route names) or from fixed sets (outcome,
// method, result, severity, state) — never IDs, addresses or tokens — and
// each label is capped at maxLabelValues distinct values besides "other".
//
// Metric names (Prometheus rules and dashboards may use exactly these):
//
//	otpprobe_attempts_total{probe,sender,provider,outcome}              counter
//	otpprobe_late_attempts_total{probe,sender,provider}                 counter
//	otpprobe_delivery_latency_seconds{sender,provider,folder}           histogram (classic + native)
//	otpprobe_auth_results_total{sender,provider,method,result}          counter
//	otpprobe_last_attempt_timestamp_seconds{probe,sender,provider}      gauge
//	otpprobe_last_success_timestamp_seconds{probe,sender,provider}      gauge
//	otpprobe_scheduler_skipped_runs_total{probe}                        counter
//	otpprobe_watcher_up{mailbox,folder}                                 gauge
//	otpprobe_watcher_last_event_timestamp_seconds{mailbox,folder}       gauge
//	otpprobe_watcher_login_failures_total{mailbox,folder,cause}         counter
//	otpprobe_watcher_login_refused{mailbox,folder}                      gauge
//	otpprobe_route_active_sender{route,sender}                          gauge
//	otpprobe_route_state{route,state}                                   gauge
//	otpprobe_route_leader{route}                                        gauge
//	otpprobe_failovers_total{route,from,to}                             counter
//	otpprobe_dns_changes_total{sender,record}                           counter
//	otpprobe_dns_findings{sender,severity}                              gauge
//	otpprobe_build_info{version,goversion}                              gauge
//	otpprobe_probe_interval_seconds{probe}                              gauge
//	otpprobe_probe_deadline_seconds{probe}                              gauge
//	otpprobe_probe_last_finished_timestamp_seconds{probe}               gauge
//	otpprobe_config_last_reload_successful                              gauge
//	otpprobe_config_last_reload_success_timestamp_seconds               gauge
//	otpprobe_alerts_firing{alertname,severity}                          gauge    (Reports)
//	otpprobe_notifications_total{notifier,result}                       counter  (Reports)
//	otpprobe_slo_objective_ratio{slo}                                   gauge    (Reports)
//	otpprobe_slo_sli_ratio{slo}                                         gauge    (Reports)
//	otpprobe_slo_error_budget_remaining_ratio{slo}                      gauge    (Reports)
//	otpprobe_slo_burn_rate{slo,window}                                  gauge    (Reports)
//	promhttp_metric_handler_requests_total{code}, go_*, process_*       (standard)
//
// All of them also have the label agent.
package metrics

import (
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "otpprobe"

// LatencyBuckets are the classic buckets of delivery_latency_seconds:
// 12 exponential from 1 s to 30 min, rounded to two significant digits so
// le values read well (1, 2, 3.9, ..., 30, 60, 120, ..., 1800), plus the
// round thresholds latency SLOs are written with (5, 10, 300, 600), so
// that e.g. le="60" exists for a "within 60 s" objective.
var LatencyBuckets = mergeBuckets(roundBuckets(prometheus.ExponentialBucketsRange(1, 1800, 12)), 5, 10, 30, 60, 120, 300, 600)

// Metrics holds otpprobe's collectors. Its methods are safe for concurrent
// use.
type Metrics struct {
	reg     *prometheus.Registry
	wrapped prometheus.Registerer
	handler http.Handler

	attempts       *prometheus.CounterVec
	late           *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	authResults    *prometheus.CounterVec
	lastAttempt    *prometheus.GaugeVec
	lastSuccess    *prometheus.GaugeVec
	skippedRuns    *prometheus.CounterVec
	watcherUp      *prometheus.GaugeVec
	watcherEvent   *prometheus.GaugeVec
	watcherRefused *prometheus.GaugeVec
	loginFailures  *prometheus.CounterVec
	routeSender    *prometheus.GaugeVec
	routeState     *prometheus.GaugeVec
	routeLeader    *prometheus.GaugeVec
	failovers      *prometheus.CounterVec
	dnsChanges     *prometheus.CounterVec
	dnsFindings    *prometheus.GaugeVec
	buildInfo      *prometheus.GaugeVec
	pruned         *prometheus.CounterVec
	probeInterval  *prometheus.GaugeVec
	probeDeadline  *prometheus.GaugeVec
	lastFinished   *prometheus.GaugeVec
	reloadOK       *prometheus.GaugeVec
	reloadAt       *prometheus.GaugeVec
	labels         *limiter
	mu             sync.Mutex
	lastTimestamps map[[4]string]float64 // metric, probe, sender, provider → newest value set
	routeStates    map[string][]string   // route → states it was in
	// lastFinishedSet: probes whose last-finished clock runs already.
	lastFinishedSet map[string]bool
}

// New returns otpprobe's metrics for the agent named agent (the config's
// agent; the hostname when empty) in a new private registry, together with
// the Go and process collectors.
func New(agent string) *Metrics {
	if agent == "" {
		agent, _ = os.Hostname()
	}
	reg := prometheus.NewRegistry()
	w := prometheus.WrapRegistererWith(prometheus.Labels{"agent": agent}, reg)
	w.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
		w.MustRegister(c)
		return c
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, labels)
		w.MustRegister(g)
		return g
	}
	m := &Metrics{
		reg:     reg,
		wrapped: w,
		attempts: counter("attempts_total",
			"Probe attempts by final outcome (inbox, spam, bounced, send_failed, lost).",
			"probe", "sender", "provider", "outcome"),
		late: counter("late_attempts_total",
			"Attempts delivered (inbox or spam) after the probe's latency SLO.",
			"probe", "sender", "provider"),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace:                       namespace,
			Name:                            "delivery_latency_seconds",
			Help:                            "Time from the final 250 after DATA to the watcher seeing the canary.",
			Buckets:                         LatencyBuckets,
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"sender", "provider", "folder"}),
		authResults: counter("auth_results_total",
			"Receiver verdicts on delivered canaries by method (spf, dkim, dmarc, arc) and RFC 8601 result; untrusted when no header from the configured authserv-id was found.",
			"sender", "provider", "method", "result"),
		lastAttempt: gauge("last_attempt_timestamp_seconds",
			"Creation time of the newest attempt with a final outcome.",
			"probe", "sender", "provider"),
		lastSuccess: gauge("last_success_timestamp_seconds",
			"Creation time of the newest attempt that reached the inbox (late or not); the process's start until the first.",
			"probe", "sender", "provider"),
		skippedRuns: counter("scheduler_skipped_runs_total",
			"Scheduled probe runs skipped because the previous run was still going.",
			"probe"),
		watcherUp: gauge("watcher_up",
			"Whether the IMAP watcher of a folder is connected and selected (1) or not (0).",
			"mailbox", "folder"),
		watcherEvent: gauge("watcher_last_event_timestamp_seconds",
			"When the IMAP watcher of a folder last completed a poll of it (its proof of life).",
			"mailbox", "folder"),
		watcherRefused: gauge("watcher_login_refused",
			"1 while the IMAP watcher of a folder waits because the server refused its credentials (backing off up to login_backoff_max), 0 otherwise.",
			"mailbox", "folder"),
		loginFailures: counter("watcher_login_failures_total",
			"IMAP connections of a watcher that failed before or at login, by cause: auth (credentials refused), dial, tls, login, config.",
			"mailbox", "folder", "cause"),
		routeSender: gauge("route_active_sender",
			"1 for the sender a route currently sends OTP mail through.",
			"route", "sender"),
		routeState: gauge("route_state",
			"1 for the failover state a route is in (primary, failing_over, backup, recovering), 0 for the others it has been in.",
			"route", "state"),
		routeLeader: gauge("route_leader",
			"1 while this agent takes the route's decisions (always, alone on SQLite; the elected agent when agents share PostgreSQL), else 0.",
			"route"),
		failovers: counter("failovers_total",
			"Route switches from one sender to another.",
			"route", "from", "to"),
		dnsChanges: counter("dns_changes_total",
			"Changes seen in a sender's mail DNS records (spf, dkim, dmarc, mx, ...).",
			"sender", "record"),
		dnsFindings: gauge("dns_findings",
			"Current DNS posture findings of a sender by severity.",
			"sender", "severity"),
		pruned: counter("store_pruned_rows_total",
			"Rows removed from the store by retention (store.retention), by table.",
			"table"),
		buildInfo: gauge("build_info",
			"Always 1; the labels say which otpprobe build is running.",
			"version", "goversion"),
		labels:          newLimiter(maxLabelValues),
		lastTimestamps:  make(map[[4]string]float64),
		routeStates:     make(map[string][]string),
		lastFinishedSet: map[string]bool{},
	}
	m.probeInterval, m.probeDeadline, m.lastFinished = newProbeGauges(gauge)
	m.reloadOK, m.reloadAt = newReloadGauges(gauge)
	w.MustRegister(m.latency)
	m.SetVersion(moduleVersion())
	m.handler = promhttp.InstrumentMetricHandler(w, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		Registry:          w,
		EnableOpenMetrics: true,
		Timeout:           10 * time.Second,
	}))
	return m
}

// moduleVersion is the main module's version from the build info;
// "(devel)" for a build from a checkout.
func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// Pruned counts rows retention removed from table.
func (m *Metrics) Pruned(table string, n int64) { m.pruned.WithLabelValues(table).Add(float64(n)) }

// SetVersion replaces the version reported by otpprobe_build_info, for a
// version set at link time.
func (m *Metrics) SetVersion(version string) {
	m.buildInfo.Reset()
	m.buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
}

// Registry is the private registry, for gathering (tests, a push).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Registerer registers further collectors with the agent label added.
func (m *Metrics) Registerer() prometheus.Registerer { return m.wrapped }

// Handler serves the registry for /metrics, in the OpenMetrics format when
// the scraper asks for it, and counts its own scrapes.
func (m *Metrics) Handler() http.Handler { return m.handler }

func roundBuckets(bs []float64) []float64 {
	out := make([]float64, len(bs))
	for i, b := range bs {
		out[i], _ = strconv.ParseFloat(strconv.FormatFloat(b, 'g', 2, 64), 64)
	}
	return out
}

func mergeBuckets(a []float64, b ...float64) []float64 {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}
