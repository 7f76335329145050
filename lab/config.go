package lab

import (
	"bytes"
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"text/template"
	"time"
)

// ConfigOptions shape the prober config generated for a world.
type ConfigOptions struct {
	Dir        string        // password files and the database go here
	Schedule   string        // every probe's schedule (default "@every 30s")
	Deadline   time.Duration // default 30s: the lab delivers in well under a second
	LatencySLO time.Duration // default 5s: provider-delay (12s) is late, healthy is not
	Listen     string        // http.listen (default 127.0.0.1:8080)
	Generated  time.Time     // the time in the header comment (default now)
	// Agent is the prober's agent name (default "lab"); with
	// World.AgentEndpoints each agent gets its own paths to the senders.
	Agent string
	// M365 is how the m365 sender authenticates: "oauth2" (default:
	// XOAUTH2 with client-credential tokens from the lab's identity
	// platform, client secret), "oauth2-cert" (the same with the
	// certificate credential), "password" (SMTP AUTH Basic) or "graph"
	// (no SMTP: Graph sendMail with client credentials).
	M365 string
}

// M365 authentication modes for ConfigOptions.M365.
const (
	M365OAuth2     = "oauth2"
	M365OAuth2Cert = "oauth2-cert"
	M365Password   = "password"
	M365Graph      = "graph"
)

// M365Modes lists the ConfigOptions.M365 values.
var M365Modes = []string{M365OAuth2, M365OAuth2Cert, M365Password, M365Graph}

// WriteConfig writes, into o.Dir, the password files and an otpprobe config
// that probes every sender of e against every mailbox, and returns the
// config's path. The prober knows the world only through this file.
func (e *Endpoints) WriteConfig(o ConfigOptions) (string, error) {
	if o.Schedule == "" {
		o.Schedule = "@every 30s"
	}
	if o.Deadline == 0 {
		o.Deadline = 30 * time.Second
	}
	if o.LatencySLO == 0 {
		o.LatencySLO = 5 * time.Second
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:8080"
	}
	if o.M365 == "" {
		o.M365 = M365OAuth2
	}
	if o.Agent == "" {
		o.Agent = "lab"
	}
	if !slices.Contains(M365Modes, o.M365) {
		return "", fmt.Errorf("lab config: m365 mode %q: want one of %v", o.M365, M365Modes)
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return "", err
	}
	pwFile := func(name, pw string) (string, error) {
		p := filepath.Join(o.Dir, name+".password")
		return p, os.WriteFile(p, []byte(pw+"\n"), 0o600)
	}
	type ep struct {
		Endpoint
		PasswordFile string
		Mode         string // senders with OAuth2: o.M365
		SecretFile   string
	}
	var senders, mailboxes []ep
	var bounces []ep
	for _, s := range e.Senders {
		f, err := pwFile("sender-"+s.Name, s.Password)
		if err != nil {
			return "", err
		}
		sep := ep{Endpoint: s, PasswordFile: f}
		if s.OAuth2 != nil && o.M365 != M365Password {
			sep.Mode = o.M365
			if sep.SecretFile, err = pwFile("sender-"+s.Name+"-client-secret", s.OAuth2.ClientSecret); err != nil {
				return "", err
			}
		}
		senders = append(senders, sep)
	}
	for _, m := range e.Mailboxes {
		f, err := pwFile("mailbox-"+m.Name, m.Password)
		if err != nil {
			return "", err
		}
		mep := ep{Endpoint: m, PasswordFile: f}
		if m.OAuth2 != nil && m.OAuth2.RefreshToken != "" {
			mep.Mode = "refresh"
			if mep.SecretFile, err = pwFile("mailbox-"+m.Name+"-refresh-token", m.OAuth2.RefreshToken); err != nil {
				return "", err
			}
		}
		mailboxes = append(mailboxes, mep)
	}
	for _, b := range []*Endpoint{e.Bounces, e.RelayBounces} {
		if b == nil {
			continue
		}
		f, err := pwFile("mailbox-"+b.Name, b.Password)
		if err != nil {
			return "", err
		}
		bounces = append(bounces, ep{Endpoint: *b, PasswordFile: f})
	}
	var buf bytes.Buffer
	err := configTemplate.Execute(&buf, map[string]any{
		"Opts": o, "DNS": e.DNS, "CAFile": e.CAFile, "Senders": senders, "Mailboxes": mailboxes, "Bounces": bounces,
		"Domain": CustomerDomain, "Selectors": []string{M365ActiveSelector, BackupSelector},
		"Generated": cmp.Or(o.Generated, time.Now()).UTC().Format(time.RFC3339),
	})
	if err != nil {
		return "", err
	}
	path := filepath.Join(o.Dir, "otpprobe.yaml")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		return "", fmt.Errorf("lab config: %w", err)
	}
	return path, nil
}

// configTemplate writes the config. "server" is the part every sender and
// mailbox shares: where it is, how to trust it, how to log in.
var configTemplate = template.Must(template.New("config").Funcs(template.FuncMap{
	"pair": func(ep any, caFile string) map[string]any { return map[string]any{"EP": ep, "CAFile": caFile} },
}).Parse(`{{define "server"}}
  - name: {{.EP.Name}}
    host: {{.EP.Host}}
    port: {{.EP.Port}}
    tls: {{.EP.TLS}}
    ca_file: {{printf "%q" .CAFile}}
    auth:
      mechanism: plain
      username: {{printf "%q" .EP.Username}}
      password_file: {{printf "%q" .EP.PasswordFile}}
{{- end -}}
{{define "oauth2"}}
      oauth2:
        provider: microsoft
        tenant: {{printf "%q" .EP.OAuth2.Tenant}}
        client_id: {{printf "%q" .EP.OAuth2.ClientID}}
        {{- if eq .EP.Mode "oauth2-cert"}}
        certificate_file: {{printf "%q" .EP.OAuth2.CertFile}}
        {{- else}}
        client_secret_file: {{printf "%q" .EP.SecretFile}}
        {{- end}}
        authority: {{printf "%q" .EP.OAuth2.Authority}}
        ca_file: {{printf "%q" .CAFile}}
{{- end -}}
{{define "imap-oauth2"}}
  - name: {{.EP.Name}}
    host: {{.EP.Host}}
    port: {{.EP.Port}}
    tls: {{.EP.TLS}}
    ca_file: {{printf "%q" .CAFile}}
    auth:
      username: {{printf "%q" .EP.Username}}
      oauth2:                  # Outlook.com takes OAuth2 only: a refresh token, rotated in place
        provider: microsoft
        tenant: {{printf "%q" .EP.OAuth2.Tenant}}
        client_id: {{printf "%q" .EP.OAuth2.ClientID}}
        refresh_token_file: {{printf "%q" .EP.SecretFile}}
        authority: {{printf "%q" .EP.OAuth2.Authority}}
        ca_file: {{printf "%q" .CAFile}}
{{- end -}}
{{define "m365"}}
  - name: {{.EP.Name}}
    {{- if eq .EP.Mode "graph"}}
    type: graph
    graph_url: {{printf "%q" .EP.OAuth2.GraphURL}}
    user: {{printf "%q" .EP.Username}}
    ca_file: {{printf "%q" .CAFile}}
    auth:
    {{- else}}
    host: {{.EP.Host}}
    port: {{.EP.Port}}
    tls: {{.EP.TLS}}
    ca_file: {{printf "%q" .CAFile}}
    auth:
      mechanism: xoauth2
      username: {{printf "%q" .EP.Username}}
    {{- end}}
    {{- template "oauth2" .}}
{{- end -}}
# Generated by otpprobe lab at {{.Generated}} for a running lab world.
# Ports are chosen at start; every TLS server presents a certificate from the
# lab CA below, and certificates are verified as in production.
agent: {{.Opts.Agent}}
senders:
{{- range .Senders}}
  {{- if .Mode}}
  {{- template "m365" (pair . $.CAFile)}}
  {{- else}}
  {{- template "server" (pair . $.CAFile)}}
  {{- end}}
    from: {{printf "%q" .From}}
    {{- if .EnvelopeFrom}}
    envelope_from: {{.EnvelopeFrom}}
    {{- end}}
    {{- if .Bounces}}
    bounces: {{.Bounces}}
    {{- end}}
{{- end}}
mailboxes:
{{- range .Mailboxes}}
  {{- if .Mode}}
  {{- template "imap-oauth2" (pair . $.CAFile)}}
  {{- else}}
  {{- template "server" (pair . $.CAFile)}}
  {{- end}}
    provider: {{.Provider}}
    address: {{.Address}}
    authserv_id: {{printf "%q" .AuthservID}}
    # junk and trash are found by their \Junk and \Trash special-use.
{{- end}}
{{- range .Bounces}}
  {{- template "server" (pair . $.CAFile)}}
    provider: {{.Provider}}
    address: {{.Address}}
{{- end}}
{{- with .Bounces}}
# DSNs return to each sender's envelope sender: the backup relay names its
# own bounce mailbox, every other sender uses this one.
bounces: {{(index . 0).Name}}
{{- end}}
probes:
  - name: otp
    schedule: {{printf "%q" .Opts.Schedule}}
    senders: [{{range $i, $s := .Senders}}{{if $i}}, {{end}}{{$s.Name}}{{end}}]
    mailboxes: [{{range $i, $m := .Mailboxes}}{{if $i}}, {{end}}{{$m.Name}}{{end}}]
    deadline: {{.Opts.Deadline}}
    latency_slo: {{.Opts.LatencySLO}}
{{- $m365 := false}}{{$backup := false}}
{{- range .Senders}}{{if eq .Name "m365"}}{{$m365 = true}}{{end}}{{if eq .Name "backup"}}{{$backup = true}}{{end}}{{end}}
{{- if and $m365 $backup}}
# OTP mail leaves through m365 and fails over to the backup relay. The
# thresholds count probe rounds (one run of the probe above): leave m365
# after 3 consecutive rounds failing at 2 or more providers, return after
# 3 consecutive healthy rounds and at least 20s on the backup.
routes:
  - name: otp
    primary: m365
    backups: [backup]
    unhealthy_providers: 2
    unhealthy_rounds: 3
    healthy_rounds: 3
    min_hold: 20s
slos:
  - name: otp-inbox
    route: otp
    objective: 99.5
    latency: {{.Opts.LatencySLO}}
    window: 24h
{{- end}}
store:
  path: {{printf "%q" (print .Opts.Dir "/otpprobe.db")}}
http:
  listen: {{printf "%q" .Opts.Listen}}
  # The demo world has nothing to protect; a real deployment sets tokens.
  allow_unauthenticated: true
{{- if .DNS}}
# The world's DNS answers for every lab domain; its SPF, DKIM and DMARC
# records are checked on this schedule and diagnose failing attempts.
dns_checks:
  schedule: "@every 1m"
  resolver:
    servers: [{{printf "%q" .DNS}}]
  # The selectors our senders sign with, as their admins know them: checked
  # from the first check on, so a key that disappears later is a change on
  # record (otpprobe also learns them from the canaries it receives).
  domains:
    - name: {{.Domain}}
      selectors: [{{range $i, $s := .Selectors}}{{if $i}}, {{end}}{{$s}}{{end}}]
{{- end}}
`))
