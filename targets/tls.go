package targets

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

const maxCAFileSize = 1 << 20

// TLSConfig returns a verifying tls.Config for the endpoint: ServerName is
// Host and, when CAFile is set, RootCAs holds ONLY the certificates of
// that file. A private CA names the one issuer this server's certificate
// comes from; adding the system pool would let any public CA vouch for
// the host too, and would make the lab's verification depend on the
// machine's trust store. InsecureSkipVerify is set only with insecure:
// true. The config is returned for every TLS mode, "none" included.
func (e Endpoint) TLSConfig() (*tls.Config, error) {
	cfg := &tls.Config{
		ServerName:         e.Host,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: e.Insecure, // explicit opt-in only
	}
	if e.CAFile != "" && !e.Insecure {
		roots := e.roots
		if roots == nil {
			var err error
			if roots, err = loadCAFile(e.CAFile); err != nil {
				return nil, fmt.Errorf("ca_file: %w", err)
			}
		}
		cfg.RootCAs = roots
	}
	return cfg, nil
}

// loadCAFile reads a PEM bundle and insists every block is a parsable
// certificate, so a key or a typo'd file is caught at load, not at the
// first handshake.
func loadCAFile(path string) (*x509.CertPool, error) {
	data, err := readFile(path, maxCAFileSize)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	n := 0
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: holds a %q PEM block; want only CERTIFICATE", path, b.Type)
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %v", path, n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, errors.New(path + ": no PEM certificates")
	}
	return pool, nil
}

// LoadCAFile reads a PEM bundle of CA certificates into a pool of its own
// (the token endpoint's ca_file).
func LoadCAFile(path string) (*x509.CertPool, error) { return loadCAFile(path) }
