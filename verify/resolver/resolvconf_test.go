package resolver

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestServersFromResolvConf(t *testing.T) {
	old := resolvConf
	t.Cleanup(func() { resolvConf = old })
	dir := t.TempDir()

	resolvConf = filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolvConf, []byte("# test\nnameserver 127.0.0.53\nnameserver ::1\noptions edns0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Servers(); !slices.Equal(got, []string{"127.0.0.53:53", "[::1]:53"}) {
		t.Errorf("Servers() = %v", got)
	}

	if err := os.WriteFile(resolvConf, []byte("search test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "none in") {
		t.Errorf("resolv.conf without nameservers: %v", err)
	}

	resolvConf = filepath.Join(dir, "missing")
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing resolv.conf: %v", err)
	}
}
