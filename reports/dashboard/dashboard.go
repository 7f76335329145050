// Package dashboard is the live page a person reads at /: route states,
// a sender × provider matrix of the last outcomes linking to each
// attempt's page, latency percentiles as server-rendered SVG, SLO budgets
// and burn rates, DNS findings and changes, incidents. html/template with
// its assets embedded; a small script refreshes the live part in place
// (without it the page still works, reloading itself). It reads through
// the same queries as the API.
package dashboard

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/reports/attempts"
	"github.com/otpprobe/otpprobe/reports/failover"
	"github.com/otpprobe/otpprobe/reports/incidents"
	"github.com/otpprobe/otpprobe/reports/slo"
	"github.com/otpprobe/otpprobe/reports/store"
	"github.com/otpprobe/otpprobe/targets"
	"github.com/otpprobe/otpprobe/verify/dnscheck"
)

// Reader is the history the dashboard reads (store.SQLite).
type Reader interface {
	attempts.Source
	incidents.Reader
	LatencySamples(ctx context.Context, since time.Time, limit int) ([]store.LatencySample, error)
	LatestDNSSnapshot(ctx context.Context, domain string) (dnscheck.Report, bool, error)
	DNSSnapshotAt(ctx context.Context, domain string, t time.Time) (dnscheck.Report, bool, error)
	DNSChangesBetween(ctx context.Context, domains []string, from, to time.Time) ([]store.DNSChange, error)
}

var _ Reader = (*store.SQLite)(nil)

// Routes are the failover decisions (failover.Failover).
type Routes interface{ Decisions() []failover.Decision }

// SLOs evaluates objectives (slo.Evaluator).
type SLOs interface {
	Evaluate(ctx context.Context) ([]slo.Status, error)
}

// Options are the dashboard's sources; Routes and SLOs may be nil.
type Options struct {
	Config  *targets.Config
	History Reader
	Routes  Routes
	SLOs    SLOs
	Logger  *slog.Logger
	Now     func() time.Time
	// Refresh is how often the page refreshes its live part (default 5s).
	Refresh time.Duration
}

//go:embed assets templates
var files embed.FS

var pages = template.Must(template.New("").Funcs(funcs).ParseFS(files, "templates/*.tmpl"))

// Dashboard serves the pages.
type Dashboard struct{ o Options }

// Register adds the dashboard's handlers to mux:
//
//	GET /                    the dashboard
//	GET /live                its live part (what the page's script fetches)
//	GET /attempts/{id}       one attempt's page
//	GET /assets/…            stylesheet and script
func Register(mux *http.ServeMux, o Options) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Refresh <= 0 {
		o.Refresh = 5 * time.Second
	}
	d := &Dashboard{o}
	mux.HandleFunc("GET /{$}", d.index)
	mux.HandleFunc("GET /live", d.live)
	mux.HandleFunc("GET /attempts/{id}", d.attempt)
	assets, _ := fs.Sub(files, "assets")
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(assets)))
}

func (d *Dashboard) index(w http.ResponseWriter, r *http.Request) {
	v, err := d.view(r.Context())
	if err != nil {
		d.fail(w, err)
		return
	}
	d.render(w, "index.tmpl", v)
}

func (d *Dashboard) live(w http.ResponseWriter, r *http.Request) {
	v, err := d.view(r.Context())
	if err != nil {
		d.fail(w, err)
		return
	}
	d.render(w, "live", v)
}

func (d *Dashboard) attempt(w http.ResponseWriter, r *http.Request) {
	a, err := d.o.History.Get(r.Context(), r.PathValue("id"))
	if errors.Is(err, attempt.ErrNotFound) {
		http.Error(w, "no such attempt", http.StatusNotFound)
		return
	}
	if err != nil {
		d.fail(w, err)
		return
	}
	v, err := d.attemptView(r.Context(), a)
	if err != nil {
		d.fail(w, err)
		return
	}
	d.render(w, "attempt.tmpl", v)
}

func (d *Dashboard) render(w http.ResponseWriter, name string, v any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// Everything is on this origin: no inline script, no CDN.
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if err := pages.ExecuteTemplate(w, name, v); err != nil {
		d.o.Logger.Error("dashboard: render", "page", name, "err", err)
	}
}

func (d *Dashboard) fail(w http.ResponseWriter, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	d.o.Logger.Error("dashboard", "err", err)
	http.Error(w, "could not read the history", http.StatusInternalServerError)
}
