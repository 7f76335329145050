package evidence

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/otpprobe/otpprobe/reports/attempts"
)

// ManifestName is the SHA-256 manifest, in sha256sum's format (check a
// bundle with `sha256sum -c SHA256SUMS` in its directory).
const ManifestName = "SHA256SUMS"

// file is one file of a bundle.
type file struct {
	name string
	data []byte
}

// Files returns every file of the bundle, redacted, with the manifest
// last.
func (b *Bundle) Files() ([]file, error) {
	var fs []file
	add := func(name string, data []byte) { fs = append(fs, file{name, []byte(b.redact.String(string(data)))}) }
	addJSON := func(name string, v any) error {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("evidence: encode %s: %w", name, err)
		}
		add(name, buf.Bytes())
		return nil
	}
	if err := addJSON("summary.json", b.Summary); err != nil {
		return nil, err
	}
	if err := addJSON("timeline.json", b.Timeline); err != nil {
		return nil, err
	}
	add("timeline.txt", []byte(timelineText(b.Timeline)))
	html, err := b.reportHTML()
	if err != nil {
		return nil, err
	}
	add("report.html", html)
	for _, a := range b.Attempts {
		dir := safeName(a.ID) + "/"
		if err := addJSON(dir+"attempt.json", attempts.DetailOf(a)); err != nil {
			return nil, err
		}
		add(dir+"transcript.txt", []byte(a.Transcript))
		if a.Header != "" { // a bounced or lost canary has no received header
			add(dir+"headers.eml", []byte(a.Header))
		}
		if dsn := attempts.BounceMessage(a); dsn != "" {
			add(dir+"dsn.eml", []byte(dsn))
		}
		if err := addJSON(dir+"dns.json", b.DNS[a.ID]); err != nil {
			return nil, err
		}
	}
	var m strings.Builder
	names := make([]string, 0, len(fs))
	sums := map[string]string{}
	for _, f := range fs {
		sum := sha256.Sum256(f.data)
		sums[f.name] = hex.EncodeToString(sum[:])
		names = append(names, f.name)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&m, "%s  %s\n", sums[n], n)
	}
	fs = append(fs, file{ManifestName, []byte(m.String())})
	return fs, nil
}

// safeName keeps an attempt ID usable as a path element.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, s)
}

// WriteZip writes the bundle as one zip archive.
func (b *Bundle) WriteZip(w io.Writer) error {
	fs, err := b.Files()
	if err != nil {
		return err
	}
	zw := zip.NewWriter(w)
	for _, f := range fs {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: b.generated})
		if err != nil {
			return fmt.Errorf("evidence: zip %s: %w", f.name, err)
		}
		if _, err := fw.Write(f.data); err != nil {
			return fmt.Errorf("evidence: zip %s: %w", f.name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("evidence: zip: %w", err)
	}
	return nil
}

// WriteDir writes the bundle's files under dir (created; it must be
// empty or missing). The files are owner-only: they are evidence.
func (b *Bundle) WriteDir(dir string) error {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("evidence: %s is not empty", dir)
	}
	fs, err := b.Files()
	if err != nil {
		return err
	}
	for _, f := range fs {
		p := filepath.Join(dir, filepath.FromSlash(f.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			return fmt.Errorf("evidence: %w", err)
		}
		if err := os.WriteFile(p, f.data, 0o600); err != nil {
			return fmt.Errorf("evidence: %w", err)
		}
	}
	return nil
}
