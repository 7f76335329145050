package lab_test

import (
	"fmt"
	"net/mail"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/lab"
)

// needTool skips without a tool, except in CI, where a skipped interop test
// is a failure (scripts/testservers.sh installs swaks and curl there).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (scripts/testservers.sh installs it)", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

// The world with clients nobody here wrote: swaks submits through the M365
// service with STARTTLS + AUTH PLAIN (verifying the lab CA), curl reads the
// message back over IMAP with STARTTLS and finds the receiver's verdicts.
func TestSwaksAndCurlInterop(t *testing.T) {
	swaks, curl := needTool(t, "swaks"), needTool(t, "curl")
	w := startWorld(t, lab.Options{})
	s := senderEndpoint(t, w, lab.SenderM365)
	mb := mailboxEndpoint(t, w, lab.ProviderGmail)
	id := fmt.Sprintf("swaks-%d", time.Now().UnixNano())
	from, err := mail.ParseAddress(s.From) // a display name, RFC 2047-encoded by String
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(swaks,
		"--server", fmt.Sprintf("%s:%d", s.Host, s.Port), "--tls", "--tls-verify", "--tls-ca-path", w.CAFile(),
		"--auth", "PLAIN", "--auth-user", s.Username, "--auth-password", s.Password,
		"--from", s.EnvelopeFrom, "--h-From", from.String(), "--to", mb.Address,
		"--header", "Subject: swaks interop "+id, "--header", "Message-Id: <"+id+"@example-bank.test>",
		"--body", "Your verification code is 654321.").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Queued mail for delivery") {
		t.Fatalf("swaks transcript lacks M365's queued reply:\n%s", out)
	}

	base := fmt.Sprintf("imap://%s:%d/INBOX", mb.Host, mb.Port)
	curlArgs := func(extra ...string) []string {
		return append([]string{"--silent", "--show-error", "--ssl-reqd", "--cacert", w.CAFile(), "--user", mb.Username + ":" + mb.Password}, extra...)
	}
	var uid string
	waitFor(10*time.Second, func() bool {
		out, err := exec.Command(curl, curlArgs(base, "--request", `UID SEARCH HEADER Message-ID "`+id+`"`)...).CombinedOutput()
		if err != nil {
			t.Logf("curl search: %v %s", err, out)
			return false
		}
		m := regexp.MustCompile(`SEARCH (\d+)`).FindStringSubmatch(string(out))
		if m != nil {
			uid = m[1]
		}
		return uid != ""
	})
	if uid == "" {
		t.Fatal("curl never found the message swaks sent")
	}
	out, err = exec.Command(curl, curlArgs(base+";UID="+uid+";SECTION=HEADER")...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl fetch: %v\n%s", err, out)
	}
	ar := topAuthResults(strings.ReplaceAll(string(out), "\n", "\r\n"))
	for _, m := range []string{"spf", "dkim", "dmarc"} {
		if ar[m] != "pass" {
			t.Errorf("%s=%q in the header curl fetched, want pass\n%s", m, ar[m], out)
		}
	}
}
