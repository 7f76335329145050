// Package api is otpprobe's HTTP API (JSON under /api/v1/): the route
// decisions the OTP application reads before each send, manual pins, SLO
// status, firing alerts and the attempt history. It only parses requests
// and encodes answers: the queries are reports/attempts' and the store's.
package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/reports/alert"
	"github.com/otpprobe/otpprobe/reports/attempts"
	"github.com/otpprobe/otpprobe/reports/evidence"
	"github.com/otpprobe/otpprobe/reports/failover"
	"github.com/otpprobe/otpprobe/reports/incidents"
	"github.com/otpprobe/otpprobe/reports/slo"
	"github.com/otpprobe/otpprobe/reports/store"
)

// Routes is the failover side of the API (failover.Failover).
type Routes interface {
	Decision(route string) (failover.Decision, bool)
	Decisions() []failover.Decision
	Pin(ctx context.Context, route, sender string, by failover.Operator) (failover.Decision, error)
	Unpin(ctx context.Context, route string, by failover.Operator) (failover.Decision, error)
}

// Transitions is the route history (store.SQLite).
type Transitions interface {
	Transitions(ctx context.Context, route string, since time.Time, limit int) ([]store.RouteTransition, error)
}

// SLOs evaluates objectives (slo.Evaluator).
type SLOs interface {
	Evaluate(ctx context.Context) ([]slo.Status, error)
}

// Alerts lists firing alerts (alert.Manager).
type Alerts interface {
	Firing() []alert.Alert
}

// Evidence builds evidence bundles (evidence.Builder).
type Evidence interface {
	Bundle(ctx context.Context, sel evidence.Selection) (*evidence.Bundle, error)
}

// Options are the API's sources; nil ones answer 404.
type Options struct {
	Routes      Routes
	Transitions Transitions
	SLOs        SLOs
	Alerts      Alerts
	// Attempts is the attempt history (store.SQLite, store.Postgres).
	Attempts attempts.Source
	// Incidents are the stored incidents (store.SQLite).
	Incidents incidents.Reader
	// Evidence builds evidence bundles (evidence.Builder).
	Evidence Evidence
	Logger   *slog.Logger
	// Now is the clock relative times ("since=2h") count from (time.Now).
	Now func() time.Time
}

// Register adds the API's handlers to mux:
//
//	GET  /api/v1/routes               every route's decision
//	GET  /api/v1/routes/{route}       one decision; ETag, If-None-Match → 304
//	GET  /api/v1/routes/{route}/transitions  the newest 100, oldest first
//	POST /api/v1/routes/{route}/pin   {"sender": "backup", "reason": "..."}
//	POST /api/v1/routes/{route}/unpin {"reason": "..."} (body optional)
//	GET  /api/v1/slo                  every SLO's status
//	GET  /api/v1/alerts               firing alerts
//	GET  /api/v1/attempts             attempts, newest first (?probe=&sender=&mailbox=&provider=
//	                                  &outcome=&since=&until=&limit=&cursor=)
//	GET  /api/v1/attempts/{id}        one attempt with everything stored
//	GET  /api/v1/incidents            incidents, newest first (?open=true&sender=&since=&limit=)
//	GET  /api/v1/incidents/{id}       one incident
//	GET  /api/v1/evidence             an evidence bundle as a zip (?id=…&id=… | ?route=&since=&until= | ?incident=N)
//
// POST requests must be application/json, which a browser cannot send
// cross-site without a preflight this API never answers. Who may call
// what is Auth's job, a middleware around the whole mux; pin and unpin
// record the caller it admitted.
func Register(mux *http.ServeMux, o Options) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &server{o}
	mux.HandleFunc("GET /api/v1/routes", s.routes)
	mux.HandleFunc("GET /api/v1/routes/{route}", s.route)
	mux.HandleFunc("GET /api/v1/routes/{route}/transitions", s.transitions)
	mux.HandleFunc("POST /api/v1/routes/{route}/pin", s.pin)
	mux.HandleFunc("POST /api/v1/routes/{route}/unpin", s.unpin)
	mux.HandleFunc("GET /api/v1/slo", s.slo)
	mux.HandleFunc("GET /api/v1/alerts", s.alerts)
	mux.HandleFunc("GET /api/v1/attempts", s.attempts)
	mux.HandleFunc("GET /api/v1/attempts/{id}", s.attempt)
	mux.HandleFunc("GET /api/v1/incidents", s.incidents)
	mux.HandleFunc("GET /api/v1/incidents/{id}", s.incident)
	mux.HandleFunc("GET /api/v1/evidence", s.evidence)
}

type server struct{ o Options }

func (s *server) routes(w http.ResponseWriter, r *http.Request) {
	if s.o.Routes == nil {
		writeJSON(w, r, http.StatusOK, []failover.Decision{})
		return
	}
	writeJSON(w, r, http.StatusOK, s.o.Routes.Decisions())
}

func (s *server) route(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("route")
	if s.o.Routes == nil {
		writeError(w, http.StatusNotFound, "unknown route "+quote(name))
		return
	}
	d, ok := s.o.Routes.Decision(name)
	if !ok {
		writeError(w, http.StatusNotFound, "unknown route "+quote(name))
		return
	}
	writeJSON(w, r, http.StatusOK, d)
}

// maxBody bounds a pin request.
const maxBody = 4 << 10

type pinRequest struct {
	Sender string `json:"sender"`
	Reason string `json:"reason"`
}

func (s *server) pin(w http.ResponseWriter, r *http.Request) {
	if s.o.Routes == nil {
		writeError(w, http.StatusNotFound, "no routes are configured")
		return
	}
	var req pinRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.Sender == "" {
		writeError(w, http.StatusBadRequest, `"sender" is required`)
		return
	}
	d, err := s.o.Routes.Pin(r.Context(), r.PathValue("route"), req.Sender, operator(r, req.Reason))
	s.decided(w, r, d, err)
}

// operator is the admitted caller as failover records it.
func operator(r *http.Request, reason string) failover.Operator {
	c, ok := CallerFrom(r.Context())
	if !ok { // served without the Auth middleware (tests)
		c = Caller{Name: Anonymous, Source: sourceAddr(r)}
	}
	return failover.Operator{Name: c.Name, Source: c.Source, Reason: reason}
}

// maxTransitions bounds the history one request returns.
const maxTransitions = 100

// Transition is a stored route transition as the API shows it.
type Transition struct {
	At         string   `json:"at"`
	FromState  string   `json:"from_state"`
	ToState    string   `json:"to_state"`
	FromSender string   `json:"from_sender"`
	ToSender   string   `json:"to_sender"`
	Reason     string   `json:"reason"`
	Diagnosis  string   `json:"diagnosis"`
	Evidence   []string `json:"evidence"`
	By         string   `json:"by,omitempty"`     // who pinned or unpinned
	Source     string   `json:"source,omitempty"` // from which address
	Agent      string   `json:"agent"`            // the agent that took it (the leader, when agents share a store)
}

func (s *server) transitions(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("route")
	if s.o.Routes == nil || s.o.Transitions == nil {
		writeError(w, http.StatusNotFound, "unknown route "+quote(name))
		return
	}
	if _, ok := s.o.Routes.Decision(name); !ok {
		writeError(w, http.StatusNotFound, "unknown route "+quote(name))
		return
	}
	trs, err := s.o.Transitions.Transitions(r.Context(), name, time.Time{}, maxTransitions)
	if err != nil {
		s.o.Logger.Error("api: route transitions", "route", name, "err", err)
		writeError(w, http.StatusInternalServerError, "could not read the transitions")
		return
	}
	out := make([]Transition, 0, len(trs))
	for _, t := range trs {
		ev := t.Evidence
		if ev == nil {
			ev = []string{}
		}
		out = append(out, Transition{At: t.At.Format(time.RFC3339Nano), FromState: t.FromState, ToState: t.ToState,
			FromSender: t.FromSender, ToSender: t.ToSender, Reason: t.Reason, Diagnosis: t.Diagnosis, Evidence: ev,
			By: t.Actor, Source: t.Source, Agent: t.Agent})
	}
	writeJSON(w, r, http.StatusOK, out)
}

func (s *server) unpin(w http.ResponseWriter, r *http.Request) {
	if s.o.Routes == nil {
		writeError(w, http.StatusNotFound, "no routes are configured")
		return
	}
	var req struct {
		Reason string `json:"reason"`
	}
	if r.ContentLength != 0 {
		if !decodeJSON(w, r, &req) {
			return
		}
	} else if !jsonContent(w, r) {
		return
	}
	d, err := s.o.Routes.Unpin(r.Context(), r.PathValue("route"), operator(r, req.Reason))
	s.decided(w, r, d, err)
}

func (s *server) decided(w http.ResponseWriter, r *http.Request, d failover.Decision, err error) {
	switch {
	case errors.Is(err, failover.ErrUnknownRoute):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, failover.ErrUnknownSender):
		writeError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		s.o.Logger.Error("api: route change", "err", err)
		writeError(w, http.StatusInternalServerError, "could not store the change")
	default:
		writeJSON(w, r, http.StatusOK, d)
	}
}

func (s *server) slo(w http.ResponseWriter, r *http.Request) {
	if s.o.SLOs == nil {
		writeJSON(w, r, http.StatusOK, []slo.Status{})
		return
	}
	sts, err := s.o.SLOs.Evaluate(r.Context())
	if err != nil {
		s.o.Logger.Error("api: evaluate SLOs", "err", err)
		writeError(w, http.StatusInternalServerError, "could not evaluate the SLOs")
		return
	}
	writeJSON(w, r, http.StatusOK, sts)
}

func (s *server) alerts(w http.ResponseWriter, r *http.Request) {
	out := []alert.Alert{}
	if s.o.Alerts != nil {
		out = append(out, s.o.Alerts.Firing()...)
	}
	writeJSON(w, r, http.StatusOK, out)
}

func (s *server) attempts(w http.ResponseWriter, r *http.Request) {
	if s.o.Attempts == nil {
		writeError(w, http.StatusNotFound, "no attempt history is configured")
		return
	}
	q, err := attempts.ParseQuery(r.URL.Query(), s.o.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	page, err := s.o.Attempts.Attempts(r.Context(), q)
	if errors.Is(err, store.ErrBadCursor) {
		writeError(w, http.StatusBadRequest, "cursor: not one this API handed out")
		return
	}
	if err != nil {
		s.o.Logger.Error("api: query attempts", "err", err)
		writeError(w, http.StatusInternalServerError, "could not read the attempts")
		return
	}
	writeJSON(w, r, http.StatusOK, attempts.PageOf(page.Attempts, page.Next))
}

func (s *server) attempt(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if s.o.Attempts == nil {
		writeError(w, http.StatusNotFound, "unknown attempt "+quote(id))
		return
	}
	a, err := s.o.Attempts.Get(r.Context(), id)
	if errors.Is(err, attempt.ErrNotFound) {
		writeError(w, http.StatusNotFound, "unknown attempt "+quote(id))
		return
	}
	if err != nil {
		s.o.Logger.Error("api: read attempt", "err", err)
		writeError(w, http.StatusInternalServerError, "could not read the attempt")
		return
	}
	writeJSON(w, r, http.StatusOK, attempts.DetailOf(a))
}

func (s *server) incidents(w http.ResponseWriter, r *http.Request) {
	if s.o.Incidents == nil {
		writeJSON(w, r, http.StatusOK, []incidents.JSON{})
		return
	}
	q, err := incidents.ParseQuery(r.URL.Query(), s.o.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	js, err := incidents.List(r.Context(), s.o.Incidents, q, s.o.Now())
	if err != nil {
		s.o.Logger.Error("api: incidents", "err", err)
		writeError(w, http.StatusInternalServerError, "could not read the incidents")
		return
	}
	writeJSON(w, r, http.StatusOK, js)
}

func (s *server) incident(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || s.o.Incidents == nil {
		writeError(w, http.StatusNotFound, "unknown incident "+quote(r.PathValue("id")))
		return
	}
	j, err := incidents.Get(r.Context(), s.o.Incidents, id, s.o.Now())
	if errors.Is(err, store.ErrNoIncident) {
		writeError(w, http.StatusNotFound, "unknown incident "+quote(r.PathValue("id")))
		return
	}
	if err != nil {
		s.o.Logger.Error("api: incident", "err", err)
		writeError(w, http.StatusInternalServerError, "could not read the incident")
		return
	}
	writeJSON(w, r, http.StatusOK, j)
}

func (s *server) evidence(w http.ResponseWriter, r *http.Request) {
	if s.o.Evidence == nil {
		writeError(w, http.StatusNotFound, "evidence bundles are not configured")
		return
	}
	sel, err := evidence.ParseSelection(r.URL.Query(), s.o.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	b, err := s.o.Evidence.Bundle(r.Context(), sel)
	switch {
	case errors.Is(err, evidence.ErrEmpty), errors.Is(err, attempt.ErrNotFound), errors.Is(err, store.ErrNoIncident):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case err != nil:
		s.o.Logger.Error("api: evidence", "err", err)
		writeError(w, http.StatusInternalServerError, "could not build the bundle")
		return
	}
	var buf bytes.Buffer
	if err := b.WriteZip(&buf); err != nil {
		s.o.Logger.Error("api: evidence", "err", err)
		writeError(w, http.StatusInternalServerError, "could not build the bundle")
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename="otpprobe-evidence.zip"`)
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

func jsonContent(w http.ResponseWriter, r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "want Content-Type: application/json")
		return false
	}
	return true
}

func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if !jsonContent(w, r) {
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", maxBody))
			return false
		}
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeError(w, http.StatusBadRequest, "invalid JSON body: more than one value")
		return false
	}
	return true
}

// writeJSON writes v with a strong ETag over its encoding, answering 304
// when the client's If-None-Match already names it.
func writeJSON(w http.ResponseWriter, r *http.Request, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "could not encode the response")
		return
	}
	body = append(body, '\n')
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:12]) + `"`
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "no-cache")
	if code == http.StatusOK && etagMatch(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(body)
}

// etagMatch implements If-None-Match's weak comparison (RFC 9110 §13.1.2).
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
