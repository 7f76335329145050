package lab

import (
	"encoding/json"
	"net/http"
	"strings"
)

// ControlHandler serves the world's control API:
//
//	GET  /scenarios             every scenario with its description
//	POST /scenario {"name":…}   apply a scenario ("healthy" restores)
//	GET  /state                 scenarios in force, DNS records, queues, deliveries, agent paths
//	POST /path {"agent":…, "sender":…, "down":true|false}
//	                            break or restore one agent's network path to a sender
func (w *World) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /scenarios", func(rw http.ResponseWriter, r *http.Request) {
		type item struct {
			Name        string `json:"name"`
			Description string `json:"description"`
		}
		var out []item
		for _, s := range Scenarios() {
			out = append(out, item{s.Name, s.Description})
		}
		writeJSON(rw, http.StatusOK, out)
	})
	mux.HandleFunc("POST /scenario", func(rw http.ResponseWriter, r *http.Request) {
		var req struct {
			Name string `json:"name"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(rw, r.Body, 4096))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || strings.TrimSpace(req.Name) == "" {
			writeJSON(rw, http.StatusBadRequest, map[string]string{"error": `body must be {"name":"<scenario>"}`})
			return
		}
		if err := w.Apply(req.Name); err != nil {
			code := http.StatusInternalServerError
			if _, lerr := LookupScenario(req.Name); lerr != nil {
				code = http.StatusNotFound
			}
			writeJSON(rw, code, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(rw, http.StatusOK, w.State())
	})
	mux.HandleFunc("POST /path", func(rw http.ResponseWriter, r *http.Request) {
		var req struct {
			Agent  string `json:"agent"`
			Sender string `json:"sender"`
			Down   bool   `json:"down"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(rw, r.Body, 4096))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || strings.TrimSpace(req.Agent) == "" || req.Sender == "" {
			writeJSON(rw, http.StatusBadRequest, map[string]string{"error": `body must be {"agent":"<agent>","sender":"<sender>","down":true|false}`})
			return
		}
		if err := w.SetPathDown(req.Agent, req.Sender, req.Down); err != nil {
			writeJSON(rw, http.StatusNotFound, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(rw, http.StatusOK, w.State())
	})
	mux.HandleFunc("GET /state", func(rw http.ResponseWriter, r *http.Request) {
		writeJSON(rw, http.StatusOK, w.State())
	})
	return mux
}

// State is a snapshot of the world for people and tests. It carries no
// passwords.
type State struct {
	Scenarios []string                `json:"scenarios"`
	DNS       []string                `json:"dns"`
	Senders   map[string]SenderState  `json:"senders"`
	Mailboxes map[string]MailboxState `json:"mailboxes"`
	Paths     []PathState             `json:"paths"` // agents' own paths to the senders (AgentEndpoints)
}

// SenderState is one sending service's queue and faults.
type SenderState struct {
	Addr   string `json:"addr"`
	Queue  int    `json:"queue"`
	Faults any    `json:"faults"`
	Stats  any    `json:"stats"`
}

// MailboxState counts deliveries into one provider's mail store.
type MailboxState struct {
	Addr       string `json:"addr"`
	Deliveries int    `json:"deliveries"`
}

// State returns a snapshot of the world.
func (w *World) State() State {
	st := State{Scenarios: w.Applied(), Senders: map[string]SenderState{}, Mailboxes: map[string]MailboxState{}, Paths: w.Paths()}
	for _, rr := range w.dns.Records() {
		st.DNS = append(st.DNS, rr.String())
	}
	for name, s := range w.senders {
		st.Senders[name] = SenderState{Addr: s.Addr(), Queue: s.QueueLen(), Faults: s.Faults(), Stats: s.Stats()}
	}
	for name, m := range w.stores {
		st.Mailboxes[name] = MailboxState{Addr: m.Addr(), Deliveries: m.DeliveryCount()}
	}
	return st
}

func writeJSON(rw http.ResponseWriter, code int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(code)
	enc := json.NewEncoder(rw)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
