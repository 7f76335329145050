package targets_test

import (
	"testing"

	"github.com/otpprobe/otpprobe/targets"
)

// TestExposure: run's guard against an open API on the network.
func TestExposure(t *testing.T) {
	for listen, ok := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:8080": true, "localhost:8080": true,
		"0.0.0.0:8080": false, ":8080": false, "192.0.2.1:8080": false,
	} {
		h := targets.HTTP{Listen: listen}
		if err := h.CheckExposure(); (err == nil) != ok {
			t.Errorf("%s without tokens: %v", listen, err)
		}
		h.AllowUnauthenticated = true
		if err := h.CheckExposure(); err != nil {
			t.Errorf("%s with allow_unauthenticated: %v", listen, err)
		}
		h = targets.HTTP{Listen: listen, Tokens: []targets.APIToken{{Name: "x"}}}
		if err := h.CheckExposure(); err != nil {
			t.Errorf("%s with tokens: %v", listen, err)
		}
	}
}
