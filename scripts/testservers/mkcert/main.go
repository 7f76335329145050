// Command mkcert writes a private CA and a server certificate for the
// interop servers when openssl is not installed: DIR/ca.pem,
// DIR/server.pem and DIR/server.key (PEM), issued by the lab's own CA code.
//
//	go run ./scripts/testservers/mkcert -dir DIR -hosts 127.0.0.60,127.0.0.61,localhost
package main

import (
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/otpprobe/otpprobe/lab"
)

func main() {
	dir := flag.String("dir", "", "output directory")
	hosts := flag.String("hosts", "", "comma-separated host names and IP addresses for the server certificate")
	flag.Parse()
	if err := run(*dir, *hosts); err != nil {
		fmt.Fprintln(os.Stderr, "mkcert:", err)
		os.Exit(1)
	}
}

func run(dir, hosts string) error {
	if dir == "" || hosts == "" {
		return fmt.Errorf("-dir and -hosts are required")
	}
	ca, err := lab.NewCA()
	if err != nil {
		return err
	}
	cert, err := ca.Issue(strings.Split(hosts, ",")...)
	if err != nil {
		return err
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"ca.pem", ca.CertPEM(), 0o644},
		{"server.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644},
		{"server.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}
