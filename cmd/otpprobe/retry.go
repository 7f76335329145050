package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/otpprobe/otpprobe/targets"
)

// retryLogins is POST /api/v1/watchers/retry[?mailbox=NAME]: the watchers
// (of NAME, or all) waiting after a refused login try again now. `otpprobe
// auth test` calls it once it proved a mailbox's credentials work. It
// answers {"retried": ["mailbox/folder", …]}, possibly empty.
func (p *prober) retryLogins(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("mailbox")
	if _, ok := p.cfg.Mailbox(name); name != "" && !ok {
		http.Error(w, fmt.Sprintf("no mailbox named %q", name), http.StatusNotFound)
		return
	}
	retried := p.engine.RetryLogins(name)
	if retried == nil {
		retried = []string{}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string][]string{"retried": retried})
}

// proberURL is where the prober of cfg listens, seen from this machine:
// an unspecified listen address is reached on loopback.
func proberURL(h targets.HTTP) string {
	host, port, err := net.SplitHostPort(h.Listen)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	scheme := "http"
	if h.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// adminToken is an admin token of h, "" when it has none.
func adminToken(h targets.HTTP) string {
	for _, t := range h.Tokens {
		if t.Scope == targets.ScopeAdmin {
			return t.Token().Reveal()
		}
	}
	return ""
}

// nudgeProber asks the running prober at base (of cfg) to retry the
// watchers of mailbox now. It is best effort: no prober running is normal
// (auth test before the first start), so it only says what happened.
func nudgeProber(ctx context.Context, base string, h targets.HTTP, mailbox string, stdout io.Writer) {
	switch {
	case base == "none":
		return
	case base == "" || strings.HasSuffix(base, ":0"):
		fmt.Fprintf(stdout, "note prober: the config's http.listen %q names no fixed port; pass --prober URL to make a running otpprobe retry now\n", h.Listen)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	u := strings.TrimSuffix(base, "/") + "/api/v1/watchers/retry?mailbox=" + url.QueryEscape(mailbox)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		fmt.Fprintf(stdout, "note prober: %v\n", err)
		return
	}
	if tok := adminToken(h); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stdout, "note prober: no otpprobe answered at %s; a running one retries by itself within login_backoff_max, or reload it (SIGHUP)\n", base)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var out struct {
		Retried []string `json:"retried"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &out) != nil {
		fmt.Fprintf(stdout, "note prober: %s answered %s to the retry: %s\n", base, resp.Status, strings.TrimSpace(string(bytes.ToValidUTF8(body[:min(len(body), 200)], nil))))
		return
	}
	if len(out.Retried) == 0 {
		fmt.Fprintf(stdout, "ok   prober: the otpprobe at %s had no watcher of %s waiting after a refused login\n", base, mailbox)
		return
	}
	fmt.Fprintf(stdout, "ok   prober: the otpprobe at %s logs in again now: %s\n", base, strings.Join(out.Retried, ", "))
}
