package targets_test

import (
	"strings"
	"testing"

	"github.com/otpprobe/otpprobe/targets"
)

func TestRender(t *testing.T) {
	c, err := targets.Parse([]byte(minimal), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	subject, body, err := c.Probes[0].Render("483920", "01JD0TOKEN")
	if err != nil {
		t.Fatal(err)
	}
	if subject != "Your verification code is 483920 [01JD0TOKEN]" {
		t.Errorf("subject = %q", subject)
	}
	if !strings.Contains(body, "483920") || !strings.Contains(body, "01JD0TOKEN") {
		t.Errorf("body lacks code or token: %q", body)
	}

	custom := strings.Replace(minimal, "    mailboxes: [seed]\n", `    mailboxes: [seed]
    message:
      subject: "{{ .Code }} is your code (ref {{ .Token }})"
      body: "{{if .Code}}Code: {{.Code}}{{else}}none{{end}}"
`, 1)
	if c, err = targets.Parse([]byte(custom), t.TempDir()); err != nil {
		t.Fatal(err)
	}
	subject, body, err = c.Probes[0].Render("000111", "tok")
	if err != nil || subject != "000111 is your code (ref tok)" || body != "Code: 000111" {
		t.Errorf("custom = %q, %q, %v", subject, body, err)
	}

	// A Probe built in code parses its templates on demand.
	p := targets.Probe{Message: targets.Message{Subject: "[{{.Token}}]", Body: "{{.Code}}"}}
	if s, b, err := p.Render("1", "t"); err != nil || s != "[t]" || b != "1" {
		t.Errorf("code-built probe: %q %q %v", s, b, err)
	}
	p.Message.Body = "{{.Missing}}"
	if _, _, err := p.Render("1", "t"); err == nil || !strings.HasPrefix(err.Error(), "message.body: ") {
		t.Errorf("bad field: %v", err)
	}
}

func BenchmarkRender(b *testing.B) {
	c, err := targets.Parse([]byte(minimal), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	p := c.Probes[0]
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := p.Render("483920", "01JD0TOKEN"); err != nil {
			b.Fatal(err)
		}
	}
}
