package main

import (
	"crypto/tls"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/lab"
)

// TestCertReload: a renewed certificate written over the files is served
// without a restart; a broken renewal keeps the previous one.
func TestCertReload(t *testing.T) {
	ca, err := lab.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := ca.WriteKeyPair(certFile, keyFile, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	var logs lockedWriter
	c, err := newCertReloader(certFile, keyFile, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: c.get})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { conn.(*tls.Conn).Handshake(); conn.Close() }()
		}
	}()
	serial := func() string {
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	first := serial()
	if err := ca.WriteKeyPair(certFile, keyFile, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	// Files are checked at most once a second: poll for the renewal.
	deadline := time.Now().Add(20 * time.Second)
	renewed := first
	for renewed == first && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		renewed = serial()
	}
	if renewed == first {
		t.Fatal("the renewed certificate was never served")
	}
	// Half-written renewal: the previous certificate stays.
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.checked = time.Time{}
	c.mu.Unlock()
	if got := serial(); got != renewed {
		t.Errorf("after a broken renewal the server presents %s, want %s", got, renewed)
	}
	if !strings.Contains(logs.String(), "renewed certificate not loaded") {
		t.Errorf("the broken renewal was not tried (or not logged):\n%s", logs.String())
	}
}
