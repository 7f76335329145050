package targets

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// Alerts configures notifications: where they go and when delivery
// problems become alerts.
type Alerts struct {
	Webhooks      []Webhook      `yaml:"webhooks"`
	Alertmanagers []Alertmanager `yaml:"alertmanagers"`
	// SenderDownRounds: consecutive rounds in which a sender failed at every
	// provider before SenderDown fires. Default 2.
	SenderDownRounds int `yaml:"sender_down_rounds"`
	// SpamAttempts: consecutive attempts of a sender landing in a provider's
	// spam folder before ProviderSpam fires. Default 2.
	SpamAttempts int `yaml:"spam_attempts"`
	// VerdictAttempts: consecutive delivered attempts whose spf, dkim or
	// dmarc result is no longer pass before VerdictRegression fires.
	// Default 2.
	VerdictAttempts int `yaml:"verdict_attempts"`
}

// Webhook is a generic JSON webhook. Each request carries
// X-Otpprobe-Timestamp (Unix seconds) and X-Otpprobe-Signature:
// "sha256=" + hex HMAC-SHA256 over timestamp + "." + body, keyed with the
// secret, so the receiver can check origin and reject replays.
type Webhook struct {
	Name       string        `yaml:"name"`
	URL        string        `yaml:"url"`
	SecretFile string        `yaml:"secret_file"` // relative to the config's directory
	SecretEnv  string        `yaml:"secret_env"`  // name of an environment variable holding it
	Timeout    time.Duration `yaml:"timeout"`     // default 10s
	CAFile     string        `yaml:"ca_file"`     // private CA for an https URL
	ClientAuth `yaml:",inline"`

	secret Secret
}

// Alertmanager is a Prometheus Alertmanager (POST /api/v2/alerts), so
// existing routing, silences and paging apply to otpprobe's alerts.
type Alertmanager struct {
	Name       string        `yaml:"name"`
	URL        string        `yaml:"url"`     // base URL, e.g. http://alertmanager:9093
	Timeout    time.Duration `yaml:"timeout"` // default 10s
	CAFile     string        `yaml:"ca_file"`
	ClientAuth `yaml:",inline"`
}

// Alert defaults.
const (
	DefaultNotifyTimeout    = 10 * time.Second
	DefaultSenderDownRounds = 2
	DefaultSpamAttempts     = 2
	DefaultVerdictAttempts  = 2
)

// Secret is the HMAC key, read at load.
func (w Webhook) Secret() Secret { return w.secret }

// WithSecret returns a copy of w signing with secret, for webhooks built in
// code.
func (w Webhook) WithSecret(secret string) Webhook {
	w.secret = Secret(secret)
	return w
}

func (a *Alerts) check(dir string) error {
	if a.SenderDownRounds == 0 {
		a.SenderDownRounds = DefaultSenderDownRounds
	}
	if a.SpamAttempts == 0 {
		a.SpamAttempts = DefaultSpamAttempts
	}
	if a.VerdictAttempts == 0 {
		a.VerdictAttempts = DefaultVerdictAttempts
	}
	for name, n := range map[string]int{"sender_down_rounds": a.SenderDownRounds, "spam_attempts": a.SpamAttempts, "verdict_attempts": a.VerdictAttempts} {
		if n < 1 || n > 1000 {
			return errorf(field("alerts", name), "must be 1-1000, got %d", n)
		}
	}
	names := map[string]int{}
	for i := range a.Webhooks {
		w := &a.Webhooks[i]
		p := item("alerts.webhooks", i, w.Name)
		if err := checkName(p, "alerts.webhooks", w.Name, names, i); err != nil {
			return err
		}
		if err := checkURL(field(p, "url"), w.URL); err != nil {
			return err
		}
		if w.Timeout == 0 {
			w.Timeout = DefaultNotifyTimeout
		}
		if w.Timeout < 0 {
			return errorf(field(p, "timeout"), "must be positive, got %v", w.Timeout)
		}
		if err := resolveCA(field(p, "ca_file"), dir, &w.CAFile); err != nil {
			return err
		}
		if err := w.ClientAuth.check(p, dir); err != nil {
			return err
		}
		switch {
		case w.SecretFile != "" && w.SecretEnv != "":
			return errorf(p, "set either secret_file or secret_env, not both")
		case w.SecretFile != "":
			path, err := resolvePath(dir, w.SecretFile)
			if err != nil {
				return errorf(field(p, "secret_file"), "%v", err)
			}
			s, err := readSecretFile(path)
			if err != nil {
				return errorf(field(p, "secret_file"), "%v", err)
			}
			w.SecretFile, w.secret = path, Secret(s)
		case w.SecretEnv != "":
			v, ok := os.LookupEnv(w.SecretEnv)
			if !ok {
				return errorf(field(p, "secret_env"), "environment variable %s is not set", w.SecretEnv)
			}
			w.secret = Secret(strings.TrimSpace(v))
		default:
			return errorf(p, "secret_file or secret_env is required: receivers verify the HMAC signature")
		}
		if len(w.secret) < 16 {
			return errorf(p, "the secret is shorter than 16 bytes; use a long random one")
		}
	}
	names = map[string]int{}
	for i := range a.Alertmanagers {
		m := &a.Alertmanagers[i]
		p := item("alerts.alertmanagers", i, m.Name)
		if err := checkName(p, "alerts.alertmanagers", m.Name, names, i); err != nil {
			return err
		}
		if err := checkURL(field(p, "url"), m.URL); err != nil {
			return err
		}
		if m.Timeout == 0 {
			m.Timeout = DefaultNotifyTimeout
		}
		if m.Timeout < 0 {
			return errorf(field(p, "timeout"), "must be positive, got %v", m.Timeout)
		}
		if err := resolveCA(field(p, "ca_file"), dir, &m.CAFile); err != nil {
			return err
		}
		if err := m.ClientAuth.check(p, dir); err != nil {
			return err
		}
	}
	return nil
}

// checkURL wants an absolute http(s) URL without credentials in it.
func checkURL(path, raw string) error {
	if raw == "" {
		return errorf(path, "required")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errorf(path, "want an http:// or https:// URL, got %q", redactURL(raw))
	}
	if u.User != nil {
		return errorf(path, "must not carry credentials; webhooks are signed with secret_file instead")
	}
	return nil
}

// redactURL drops anything that may be a credential (userinfo, query)
// before a URL goes into an error.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}

func resolveCA(path, dir string, file *string) error {
	if *file == "" {
		return nil
	}
	abs, err := resolvePath(dir, *file)
	if err != nil {
		return errorf(path, "%v", err)
	}
	if _, err := loadCAFile(abs); err != nil {
		return errorf(path, "%v", err)
	}
	*file = abs
	return nil
}

// NotifierNames lists the webhooks and alertmanagers by name, e.g. for
// logs.
func (a Alerts) NotifierNames() []string {
	var out []string
	for _, w := range a.Webhooks {
		out = append(out, fmt.Sprintf("webhook:%s", w.Name))
	}
	for _, m := range a.Alertmanagers {
		out = append(out, fmt.Sprintf("alertmanager:%s", m.Name))
	}
	return out
}
