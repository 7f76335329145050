package lab_test

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/otpprobe/otpprobe/lab"
)

func TestControlAPI(t *testing.T) {
	w := startWorld(t, lab.Options{})
	srv := httptest.NewServer(w.ControlHandler())
	defer srv.Close()

	post := func(body string) (int, lab.State) {
		t.Helper()
		resp, err := http.Post(srv.URL+"/scenario", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st lab.State
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, st
	}

	resp, err := http.Get(srv.URL + "/scenarios")
	if err != nil {
		t.Fatal(err)
	}
	var list []struct{ Name, Description string }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(list) != len(lab.Scenarios()) || list[0].Name != lab.Healthy || list[0].Description == "" {
		t.Fatalf("GET /scenarios = %+v", list)
	}

	dmarc := "_dmarc." + lab.CustomerDomain
	if _, err := w.Resolver().LookupTXT(t.Context(), dmarc); err != nil {
		t.Fatalf("healthy world: %s: %v", dmarc, err)
	}
	code, st := post(`{"name":"dmarc-record-removed"}`)
	if code != http.StatusOK || len(st.Scenarios) != 1 || st.Scenarios[0] != "dmarc-record-removed" {
		t.Fatalf("POST dmarc-record-removed: %d %v", code, st.Scenarios)
	}
	var dnsErr *net.DNSError
	if _, err := w.Resolver().LookupTXT(t.Context(), dmarc); !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Fatalf("after dmarc-record-removed, %s: %v, want not found", dmarc, err)
	}
	// Scenarios compose until healthy restores.
	if code, st = post(`{"name":"m365-outage"}`); code != http.StatusOK || len(st.Scenarios) != 2 {
		t.Fatalf("POST m365-outage: %d %v", code, st.Scenarios)
	}
	if st.Senders[lab.SenderM365].Faults == nil {
		t.Fatalf("state has no m365 faults: %+v", st.Senders)
	}
	for _, bad := range []struct {
		body string
		code int
	}{{`{"name":"no-such-scenario"}`, http.StatusNotFound}, {`{"nam":"healthy"}`, http.StatusBadRequest}, {`not json`, http.StatusBadRequest}} {
		if code, _ := post(bad.body); code != bad.code {
			t.Errorf("POST %s: %d, want %d", bad.body, code, bad.code)
		}
	}
	if code, st = post(`{"name":"healthy"}`); code != http.StatusOK || len(st.Scenarios) != 1 || st.Scenarios[0] != lab.Healthy {
		t.Fatalf("POST healthy: %d %v", code, st.Scenarios)
	}
	if _, err := w.Resolver().LookupTXT(t.Context(), dmarc); err != nil {
		t.Fatalf("healthy restored, %s: %v", dmarc, err)
	}
	if err := submit(w, senderEndpoint(t, w, lab.SenderM365), "seed@gmail.test", "after-restore"); err != nil {
		t.Fatalf("m365 after healthy: %v", err)
	}
	resp, err = http.Get(srv.URL + "/state")
	if err != nil {
		t.Fatal(err)
	}
	var state map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&state); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	raw, _ := json.Marshal(state)
	for _, ep := range w.Endpoints().Senders {
		if strings.Contains(string(raw), ep.Password) {
			t.Fatal("GET /state leaks a sender password")
		}
	}
}
