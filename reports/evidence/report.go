package evidence

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
	"github.com/otpprobe/otpprobe/reports/attempts"
)

//go:embed report.html.tmpl
var reportSource string

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"time": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000Z") },
	"ptime": func(t *time.Time) string {
		if t == nil {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"outcome":  attempts.OutcomeText,
	"latency":  attempts.LatencyText,
	"verdicts": attempts.VerdictText,
	"healthy":  healthy,
	"dur":      func(s int64) string { return (time.Duration(s) * time.Second).String() },
	"timings":  attempts.TimingsOf,
	"ms": func(ms int64) string {
		if ms == 0 {
			return "—"
		}
		return (time.Duration(ms) * time.Millisecond).String()
	},
}).Parse(reportSource))

type reportData struct {
	Title string
	*Bundle
	Attempts []*attempt.Attempt
}

// reportHTML renders report.html: one page with no external asset.
func (b *Bundle) reportHTML() ([]byte, error) {
	title := fmt.Sprintf("%d attempts", len(b.Attempts))
	if b.Incident != nil {
		title = fmt.Sprintf("incident %d: %s (%s)", b.Incident.ID, b.Incident.Sender, b.Incident.State)
	}
	var buf bytes.Buffer
	if err := reportTmpl.Execute(&buf, reportData{Title: title, Bundle: b, Attempts: b.Attempts}); err != nil {
		return nil, fmt.Errorf("evidence: render report.html: %w", err)
	}
	return buf.Bytes(), nil
}
