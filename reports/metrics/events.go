package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Route states of the failover state machine.
var routeStates = []string{"primary", "failing_over", "backup", "recovering"}

// DNS finding severities.
var severities = []string{"info", "warning", "critical"}

// SkippedRun counts a scheduled run of probe skipped because its previous
// run was still going.
func (m *Metrics) SkippedRun(probe string) {
	m.skippedRuns.WithLabelValues(m.labels.value("probe", probe)).Inc()
}

// SetWatcher records whether the watcher of a mailbox's folder is
// connected, and when it last completed a poll (zero: never, no series).
// The login failure causes start at 0, so increase() sees the first one.
func (m *Metrics) SetWatcher(mailbox, folder string, up bool, lastPoll time.Time) {
	v := 0.0
	if up {
		v = 1
	}
	mailbox, folder = m.labels.value("mailbox", mailbox), m.folder(folder)
	m.watcherUp.WithLabelValues(mailbox, folder).Set(v)
	if !lastPoll.IsZero() {
		m.watcherEvent.WithLabelValues(mailbox, folder).Set(float64(lastPoll.UnixMilli()) / 1000)
	}
	for _, cause := range loginCauses {
		m.loginFailures.WithLabelValues(mailbox, folder, cause)
	}
}

// SetWatcherLoginRefused records whether the watcher of a mailbox's
// folder waits because the server refused its credentials (its backoff
// grows to the mailbox's login_backoff_max).
func (m *Metrics) SetWatcherLoginRefused(mailbox, folder string, refused bool) {
	v := 0.0
	if refused {
		v = 1
	}
	m.watcherRefused.WithLabelValues(m.labels.value("mailbox", mailbox), m.folder(folder)).Set(v)
}

// loginCauses are the causes of WatcherLoginFailed.
var loginCauses = []string{"auth", "dial", "tls", "login", "config"}

// WatcherLoginFailed counts a watcher connection that failed before or at
// login, by cause (auth when the server refused the credentials).
func (m *Metrics) WatcherLoginFailed(mailbox, folder, cause string) {
	m.loginFailures.WithLabelValues(m.labels.value("mailbox", mailbox), m.folder(folder), m.labels.value("cause", cause)).Inc()
}

// SetRouteLeader says whether this agent takes route's decisions.
func (m *Metrics) SetRouteLeader(route string, leading bool) {
	v := 0.0
	if leading {
		v = 1
	}
	m.routeLeader.WithLabelValues(m.labels.value("route", route)).Set(v)
}

// SetRoute records a route's active sender and failover state. The states
// form a state set: the current one is 1, the others 0.
func (m *Metrics) SetRoute(route, activeSender, state string) {
	route = m.labels.value("route", route)
	state = m.labels.value("state", state)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.routeSender.DeletePartialMatch(prometheus.Labels{"route": route})
	m.routeSender.WithLabelValues(route, m.labels.value("sender", activeSender)).Set(1)

	states, ok := m.routeStates[route]
	if !ok {
		states = append([]string(nil), routeStates...)
	}
	found := false
	for _, s := range states {
		found = found || s == state
	}
	if !found {
		states = append(states, state)
	}
	m.routeStates[route] = states
	for _, s := range states {
		v := 0.0
		if s == state {
			v = 1
		}
		m.routeState.WithLabelValues(route, s).Set(v)
	}
}

// Failover counts a route switching from one sender to another.
func (m *Metrics) Failover(route, from, to string) {
	m.failovers.WithLabelValues(m.labels.value("route", route), m.labels.value("sender", from), m.labels.value("sender", to)).Inc()
}

// DNSChanged counts a change seen in one of a sender's mail DNS records;
// record is the kind (spf, dkim, dmarc, mx, mta-sts, ...), not the name.
func (m *Metrics) DNSChanged(sender, record string) {
	m.dnsChanges.WithLabelValues(m.labels.value("sender", sender), m.labels.value("record", record)).Inc()
}

// SetDNSFindings replaces a sender's current DNS findings, counted by
// severity (info, warning, critical; anything else counts as other).
// Every severity gets a series, 0 when absent, so alerts need no absent().
func (m *Metrics) SetDNSFindings(sender string, bySeverity map[string]int) {
	sender = m.labels.value("sender", sender)
	counts := make(map[string]int, len(severities)+1)
	for _, s := range severities {
		counts[s] = 0
	}
	for s, n := range bySeverity {
		if s = oneOf(s, severities...); s == unknownValue {
			s = otherValue
		}
		counts[s] += n
	}
	if _, ok := counts[otherValue]; !ok {
		m.dnsFindings.DeleteLabelValues(sender, otherValue)
	}
	for s, n := range counts {
		m.dnsFindings.WithLabelValues(sender, s).Set(float64(n))
	}
}
