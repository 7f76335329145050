package probe

import (
	"bytes"
	"io"
	netmail "net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"
	"gopkg.in/yaml.v3"

	"github.com/otpprobe/otpprobe/targets"
)

// canaryCase is one sender From and one probe message to compose.
type canaryCase struct {
	name, from string
	msg        targets.Message
}

// exampleCanaryCases reads the From of every sender and the message of
// every probe in every example config under configs/ (the production
// example included), so a shape real users write is always composed.
func exampleCanaryCases(t *testing.T) []canaryCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "configs", "*.yaml"))
	files = append(files, filepath.Join("..", "configs", "compose", "otpprobe.yaml"))
	if err != nil || len(files) < 3 {
		t.Fatalf("example configs: %v %v", files, err)
	}
	var out []canaryCase
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Senders []struct{ Name, From string }
			Probes  []struct {
				Name    string
				Message targets.Message
			}
		}
		if err := yaml.Unmarshal(data, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(c.Senders) == 0 || len(c.Probes) == 0 {
			t.Fatalf("%s: no senders or probes", f)
		}
		for _, s := range c.Senders {
			for _, p := range c.Probes {
				out = append(out, canaryCase{strings.TrimPrefix(f, "../configs/") + "/" + s.Name + "/" + p.Name, s.From, p.Message})
			}
		}
	}
	return out
}

// TestComposeParsesBack composes canaries from display names, non-ASCII
// display names and every example config, and reads each back with
// net/mail and go-message the way a receiver would.
func TestComposeParsesBack(t *testing.T) {
	cases := []canaryCase{
		{name: "bare address", from: "otp@example.com"},
		{name: "display name", from: "Example Bank <otp@example.com>"},
		{name: "quoted display name with comma", from: `"Bank, Example" <otp@example.com>`},
		{name: "non-ASCII display name", from: "Bänk Überweisung <otp@bank.example>"},
		{name: "non-ASCII script", from: "Банк Пример <otp@bank.example>"},
		{name: "angle address without name", from: "<otp@example.com>"},
		{name: "upper-case domain", from: "Example <OTP@Example.COM>"},
	}
	cases = append(cases, exampleCanaryCases(t)...)
	msgIDShape := regexp.MustCompile(`^<[0-9a-f-]{36}@[a-z0-9.-]+>$`)
	date := time.Date(2026, 12, 5, 16, 58, 0, 0, time.UTC)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want, err := netmail.ParseAddress(tc.from)
			if err != nil {
				t.Fatalf("test case from %q: %v", tc.from, err)
			}
			p := targets.Probe{Name: "otp", Message: tc.msg}
			if p.Message.Subject == "" {
				p.Message.Subject = targets.DefaultSubject
			}
			if p.Message.Body == "" {
				p.Message.Body = targets.DefaultBody
			}
			a, err := NewAttempt(date, "otp", "s", tc.from, "m", "gmail", time.Minute, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			subject, body, err := p.Render(a.Code, a.Token)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := Compose(a, Canary{From: tc.from, To: "seed@gmail.example", Subject: subject, Body: body}, date)
			if err != nil {
				t.Fatalf("Compose: %v", err)
			}
			head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
			t.Logf("header:\n%s", head)
			for _, line := range strings.Split(string(head), "\r\n") {
				if len(line) > 998 || !isASCII(line) {
					t.Errorf("header line is not 7-bit or longer than 998: %q", line)
				}
			}

			// net/mail, strictly: what rspamd's FROM_INVALID stands for.
			m, err := netmail.ReadMessage(bytes.NewReader(raw))
			if err != nil {
				t.Fatalf("net/mail: %v", err)
			}
			froms, err := m.Header.AddressList("From")
			if err != nil || len(froms) != 1 {
				t.Fatalf("From %q does not parse: %v", m.Header.Get("From"), err)
			}
			if froms[0].Address != want.Address || froms[0].Name != want.Name {
				t.Errorf("From parsed back as %q <%s>, want %q <%s>", froms[0].Name, froms[0].Address, want.Name, want.Address)
			}
			domain := strings.ToLower(want.Address[strings.LastIndexByte(want.Address, '@')+1:])
			if mid := m.Header.Get("Message-Id"); !msgIDShape.MatchString(mid) || !strings.HasSuffix(mid, "@"+domain+">") {
				t.Errorf("Message-ID %q: want <uuid@%s>", mid, domain)
			}
			if got, err := m.Header.Date(); err != nil || !got.Equal(date) {
				t.Errorf("Date %q: %v", m.Header.Get("Date"), err)
			}
			if v := m.Header.Get("MIME-Version"); v != "1.0" {
				t.Errorf("MIME-Version %q", v)
			}
			if v := m.Header.Get("List-Unsubscribe"); v != "" {
				t.Errorf("a transactional canary carries List-Unsubscribe %q", v)
			}
			if v := m.Header.Get(HeaderID); v != a.Token {
				t.Errorf("%s %q, want %q", HeaderID, v, a.Token)
			}

			// go-message, as the watcher and the lab receivers read it.
			r, err := mail.CreateReader(bytes.NewReader(raw))
			if err != nil {
				t.Fatalf("go-message: %v", err)
			}
			addrs, err := r.Header.AddressList("From")
			if err != nil || len(addrs) != 1 || addrs[0].Address != want.Address || addrs[0].Name != want.Name {
				t.Errorf("go-message From %v %v, want %q <%s>", addrs, err, want.Name, want.Address)
			}
			if s, err := r.Header.Subject(); err != nil || s != subject {
				t.Errorf("Subject %q %v, want %q", s, err, subject)
			}
			var parts []string
			for {
				part, err := r.NextPart()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("part: %v", err)
				}
				b, _ := io.ReadAll(part.Body)
				ct, _, _ := part.Header.(*mail.InlineHeader).ContentType()
				parts = append(parts, ct)
				if !strings.Contains(string(b), a.Code) {
					t.Errorf("%s part lacks the code", ct)
				}
			}
			if strings.Join(parts, ",") != "text/plain,text/html" {
				t.Errorf("parts %v, want text/plain and text/html", parts)
			}
		})
	}
}

// TestNewAttemptMessageIDDomain: the Message-ID is <id@domain> whatever
// From looks like, and a From without an address is refused.
func TestNewAttemptMessageIDDomain(t *testing.T) {
	for from, domain := range map[string]string{
		"otp@example.com":                "example.com",
		"Example Bank <otp@example.com>": "example.com",
		`"a@b" <otp@Mail.Example.COM>`:   "mail.example.com",
	} {
		a, err := NewAttempt(time.Now(), "p", "s", from, "m", "gmail", time.Minute, time.Minute)
		if err != nil {
			t.Fatalf("%q: %v", from, err)
		}
		if !strings.HasSuffix(a.MessageID, "@"+domain) || strings.ContainsAny(a.MessageID, "<> ") {
			t.Errorf("%q: Message-ID %q, want id@%s", from, a.MessageID, domain)
		}
	}
	if _, err := NewAttempt(time.Now(), "p", "s", "Example Bank", "m", "gmail", time.Minute, time.Minute); err == nil {
		t.Error("a From without an address was accepted")
	}
}
