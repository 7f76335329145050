package main

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEvidenceBundle runs the lab once, then bundles its attempts and
// checks the bundle: every file listed in the manifest with its hash, the
// report self-contained, every delivered canary with its received header,
// every bounced one with the DSN, and no configured secret anywhere in it.
func TestEvidenceBundle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	code, out, errOut := run(t, ctx, "lab", "--once", "--format", "json", "--listen", "127.0.0.1:0", "--dir", dir,
		"--scenario", "m365-spf-and-dkim-broken")
	if code != exitFailed {
		t.Fatalf("lab --once: exit %d\n%s\n%s", code, out, errOut)
	}
	cfg := filepath.Join(dir, "otpprobe.yaml")
	zipPath := filepath.Join(dir, "bundle.zip")
	code, out, errOut = run(t, ctx, "evidence", "--config", cfg, "--route", "otp", "--since", "1h", "-o", zipPath)
	if code != exitOK {
		t.Fatalf("evidence: exit %d\n%s\n%s", code, out, errOut)
	}
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		files[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	var secrets []string
	matches, _ := filepath.Glob(filepath.Join(dir, "*.password"))
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, strings.TrimSpace(string(b)))
	}
	if len(secrets) == 0 {
		t.Fatal("the lab wrote no password files to look for")
	}
	for name, data := range files {
		for _, s := range secrets {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s contains a configured secret", name)
			}
		}
	}
	manifest := string(files["SHA256SUMS"])
	attemptDirs, bounced := 0, 0
	for name, data := range files {
		if name == "SHA256SUMS" {
			continue
		}
		sum := sha256.Sum256(data)
		if !strings.Contains(manifest, hex.EncodeToString(sum[:])+"  "+name+"\n") {
			t.Errorf("%s is not in the manifest with its hash", name)
		}
		if strings.HasSuffix(name, "/attempt.json") {
			attemptDirs++
			var a struct{ Outcome string }
			if err := json.Unmarshal(data, &a); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			want := []string{"transcript.txt", "dns.json"}
			switch a.Outcome {
			case "inbox", "spam":
				want = append(want, "headers.eml")
			case "bounced":
				want = append(want, "dsn.eml")
				bounced++
			}
			for _, f := range want {
				if len(files[strings.TrimSuffix(name, "attempt.json")+f]) == 0 {
					t.Errorf("%s (%s) has no %s beside it", name, a.Outcome, f)
				}
			}
			if dsn := files[strings.TrimSuffix(name, "attempt.json")+"dsn.eml"]; a.Outcome == "bounced" && !bytes.Contains(dsn, []byte("Status: 5.")) {
				t.Errorf("%s: dsn.eml holds no failure status:\n%s", name, dsn)
			}
		}
	}
	if attemptDirs != 6 || bounced == 0 {
		t.Errorf("%d attempts in the bundle, %d bounced; want 6, some bounced", attemptDirs, bounced)
	}
	for _, f := range []string{"summary.json", "timeline.json", "timeline.txt", "report.html"} {
		if len(files[f]) == 0 {
			t.Errorf("%s missing or empty", f)
		}
	}
	report := string(files["report.html"])
	for _, bad := range []string{"<script src", "<link", "src=\"http", "href=\"http", "@import"} {
		if strings.Contains(report, bad) {
			t.Errorf("report.html refers to an external asset (%s)", bad)
		}
	}
	if !strings.Contains(report, "selector1._domainkey") || !strings.Contains(report, "which has no TXT record") {
		t.Errorf("report.html does not name the dangling DKIM selector")
	}

	// The same bundle as a directory.
	bundleDir := filepath.Join(dir, "bundle") + "/"
	if code, out, errOut = run(t, ctx, "evidence", "--config", cfg, "--route", "otp", "--since", "1h", "-o", bundleDir); code != exitOK {
		t.Fatalf("evidence -o DIR/: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(bundleDir, "SHA256SUMS")); err != nil {
		t.Error(err)
	}
	if code, _, errOut = run(t, ctx, "evidence", "--config", cfg, "--incident", "99", "-o", zipPath); code != exitFailed {
		t.Errorf("unknown incident: exit %d %s", code, errOut)
	}
}
