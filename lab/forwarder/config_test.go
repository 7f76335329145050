package forwarder_test

import (
	"strings"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/lab/forwarder"
	"github.com/otpprobe/otpprobe/verify"
	"github.com/otpprobe/otpprobe/verify/resolver"
)

func TestStartRejectsBadConfig(t *testing.T) {
	res, err := resolver.New(resolver.Config{Servers: []string{"127.0.0.1:53"}})
	if err != nil {
		t.Fatal(err)
	}
	good := forwarder.Config{IP: "127.0.0.1", Port: 2525, Hostname: "mx.list.test", Domain: "list.test",
		Lists: map[string][]string{"team": {"a@b.test"}}, Sealer: &verify.ARCSealer{}, Resolver: res}
	for _, tc := range []struct {
		name   string
		change func(c *forwarder.Config)
		want   string
	}{
		{"bad IP", func(c *forwarder.Config) { c.IP = "mx" }, `IP "mx"`},
		{"port", func(c *forwarder.Config) { c.Port = 0 }, "Port 0"},
		{"no lists", func(c *forwarder.Config) { c.Lists = nil }, "no Lists"},
		{"no sealer", func(c *forwarder.Config) { c.Sealer = nil }, "Sealer"},
		{"negative size", func(c *forwarder.Config) { c.MaxMessageBytes = -1 }, "must not be negative"},
		{"negative timeout", func(c *forwarder.Config) { c.Timeout = -time.Second }, "must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.change(&c)
			s, err := forwarder.Start(c)
			if err == nil {
				s.Close()
				t.Fatal("Start accepted the config")
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q does not name %q on one line", err, tc.want)
			}
		})
	}
}
