package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/otpprobe/otpprobe/targets"
)

// Alertmanager posts alerts to a Prometheus Alertmanager's
// POST /api/v2/alerts, so its routing, inhibition, silences and paging
// apply. A resolved alert is sent with endsAt set; firing ones are re-sent
// every Options.Resend, as Prometheus does, so Alertmanager does not
// resolve them on its own.
type Alertmanager struct {
	name   string
	url    string
	client *http.Client
}

// NewAlertmanager builds the notifier for cfg.
func NewAlertmanager(cfg targets.Alertmanager) (*Alertmanager, error) {
	client, err := httpClient(cfg.Timeout, cfg.CAFile, cfg.ClientAuth)
	if err != nil {
		return nil, fmt.Errorf("alertmanager %s: %w", cfg.Name, err)
	}
	return &Alertmanager{name: "alertmanager:" + cfg.Name, url: strings.TrimSuffix(cfg.URL, "/") + "/api/v2/alerts", client: client}, nil
}

func (a *Alertmanager) Name() string             { return a.name }
func (a *Alertmanager) Accepts(kind string) bool { return kind == KindAlert }
func (a *Alertmanager) Resends() bool            { return true }

// PostableAlert is one element of Alertmanager's API v2 postableAlerts.
type PostableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     string            `json:"startsAt,omitempty"`
	EndsAt       string            `json:"endsAt,omitempty"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Postable converts an event to Alertmanager's form: the alert name is
// alertname, the agent a label, and diagnosis and evidence annotations.
func Postable(e Event) PostableAlert {
	a := e.Alert
	labels := map[string]string{"alertname": a.Name}
	for k, v := range a.Labels {
		labels[k] = v
	}
	if e.Agent != "" {
		labels["agent"] = e.Agent
	}
	p := PostableAlert{
		Labels: labels,
		Annotations: map[string]string{"summary": a.Summary, "diagnosis": a.Diagnosis,
			"evidence": strings.Join(a.Evidence, " "), "runbook_url": RunbookURL(a.Name)},
		StartsAt: a.StartsAt.UTC().Format(time.RFC3339Nano),
	}
	if a.Status == Resolved && !a.EndsAt.IsZero() {
		p.EndsAt = a.EndsAt.UTC().Format(time.RFC3339Nano)
	}
	return p
}

// Notify posts one alert event.
func (a *Alertmanager) Notify(ctx context.Context, kind string, payload []byte) error {
	var e Event
	if err := json.Unmarshal(payload, &e); err != nil || e.Alert == nil {
		return fmt.Errorf("%s: not an alert event", a.name)
	}
	body, err := json.Marshal([]PostableAlert{Postable(e)})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", a.name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "otpprobe")
	return do(a.client, req, a.name)
}
