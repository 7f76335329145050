package targets_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/targets"
)

// testCA is a throwaway CA issuing a server certificate for localhost.
type testCA struct {
	certPEM []byte
	server  tls.Certificate
}

func newTestCA(t *testing.T) testCA {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		server:  tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
	}
}

// serveTLS runs a TLS server on loopback that completes handshakes.
func serveTLS(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.(*tls.Conn).Handshake()
			}()
		}
	}()
	return ln.Addr().String()
}

func handshake(addr string, cfg *tls.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// TestTLSConfig does real handshakes on loopback: the ca_file's CA is
// trusted, and only it; the host name is verified; insecure skips both.
func TestTLSConfig(t *testing.T) {
	good, other := newTestCA(t), newTestCA(t)
	addr := serveTLS(t, good.server)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "good.pem"), string(good.certPEM))
	write(t, filepath.Join(dir, "other.pem"), string(other.certPEM))

	load := func(host, caFile string, insecure bool) targets.Mailbox {
		t.Helper()
		cfg := strings.Replace(minimal, "    host: imap.example.net\n",
			"    host: "+host+"\n    ca_file: "+caFile+"\n    insecure: "+map[bool]string{true: "true", false: "false"}[insecure]+"\n", 1)
		if caFile == "" {
			cfg = strings.Replace(cfg, "    ca_file: \n", "", 1)
		}
		c, err := targets.Parse([]byte(cfg), dir)
		if err != nil {
			t.Fatal(err)
		}
		return c.Mailboxes[0]
	}
	for _, tc := range []struct {
		name, host, ca string
		insecure, ok   bool
	}{
		{"trusted CA, name matches", "localhost", "good.pem", false, true},
		{"trusted CA, IP matches", "127.0.0.1", "good.pem", false, true},
		{"other CA", "localhost", "other.pem", false, false},
		{"system pool only", "localhost", "", false, false},
		{"name mismatch", "imap.example.net", "good.pem", false, false},
		{"insecure", "imap.example.net", "", true, true},
	} {
		m := load(tc.host, tc.ca, tc.insecure)
		cfg, err := m.TLSConfig()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if cfg.ServerName != tc.host || cfg.InsecureSkipVerify != tc.insecure {
			t.Errorf("%s: ServerName %q InsecureSkipVerify %v", tc.name, cfg.ServerName, cfg.InsecureSkipVerify)
		}
		err = handshake(addr, cfg)
		if (err == nil) != tc.ok {
			t.Errorf("%s: handshake error %v; want ok=%v", tc.name, err, tc.ok)
		}
	}

	// An Endpoint built in code (not loaded) reads its ca_file on demand.
	e := targets.Endpoint{Host: "localhost", Port: 1, TLS: targets.TLSImplicit, CAFile: filepath.Join(dir, "good.pem")}
	cfg, err := e.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(addr, cfg); err != nil {
		t.Errorf("code-built endpoint: %v", err)
	}
}
