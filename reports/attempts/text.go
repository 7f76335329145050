package attempts

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/otpprobe/otpprobe/attempt"
)

// WriteTable writes attempts as the CLI's table, one line each.
func WriteTable(w io.Writer, as []*attempt.Attempt, next string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CREATED\tID\tPROBE\tSENDER\tMAILBOX\tOUTCOME\tLATENCY\tSPF/DKIM/DMARC\tDIAGNOSIS")
	for _, a := range as {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			a.CreatedAt.Format(time.RFC3339), a.ID, a.Probe, a.Sender, a.Mailbox, OutcomeText(a),
			LatencyText(a), VerdictText(a), Shorten(a.Diagnosis, 80))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if next != "" {
		_, err := fmt.Fprintf(w, "more: --cursor %s\n", next)
		return err
	}
	return nil
}

// WriteText writes one attempt for a person: what happened, the timings,
// the verdicts, the diagnosis, the transcript and the header block.
func WriteText(w io.Writer, a *attempt.Attempt) error {
	t := TimingsOf(a)
	var b strings.Builder
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%-13s %s\n", k+":", v)
		}
	}
	line("attempt", a.ID)
	line("round", a.RoundID)
	line("agent", a.Agent)
	line("probe", a.Probe)
	line("sender", a.Sender)
	line("mailbox", a.Mailbox+" ("+a.ProviderKey()+")")
	line("outcome", OutcomeText(a))
	line("created", timeText(a.CreatedAt))
	line("submitted", timeText(a.SubmittedAt))
	line("seen", timeText(a.SeenAt))
	line("folder", a.Folder)
	line("timings", fmt.Sprintf("submission %s, transit %s, detection %s, latency %s",
		msText(t.SubmissionMS), msText(t.TransitMS), msText(t.DetectionMS), msText(t.LatencyMS)))
	if a.SMTP.Code != 0 || a.SMTP.Stage != "" {
		line("smtp", strings.TrimSpace(fmt.Sprintf("%s %d %s %s", a.SMTP.Stage, a.SMTP.Code, a.SMTP.Enhanced, a.SMTP.Reply)))
	}
	line("verdicts", VerdictText(a)+" (authserv-id "+orDash(a.Verdicts.AuthservID)+")")
	line("diagnosis", a.Diagnosis)
	line("message-id", a.MessageID)
	if a.Transcript != "" {
		b.WriteString("\n--- SMTP transcript\n" + strings.TrimRight(a.Transcript, "\r\n") + "\n")
	}
	if a.Header != "" {
		b.WriteString("\n--- header as received\n" + strings.ReplaceAll(strings.TrimRight(a.Header, "\r\n"), "\r\n", "\n") + "\n")
	}
	if dsn := BounceMessage(a); dsn != "" {
		b.WriteString("\n--- the DSN that bounced it\n" + strings.ReplaceAll(strings.TrimRight(dsn, "\r\n"), "\r\n", "\n") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// OutcomeText is the outcome with "late" marked.
func OutcomeText(a *attempt.Attempt) string {
	if a.Late {
		return string(a.Outcome) + " (late)"
	}
	return string(a.Outcome)
}

// LatencyText is the latency, or "-" when the canary was not seen.
func LatencyText(a *attempt.Attempt) string {
	if l := a.Latency(); l > 0 {
		return l.Round(time.Millisecond).String()
	}
	return "-"
}

// VerdictText is "spf/dkim/dmarc".
func VerdictText(a *attempt.Attempt) string {
	return orDash(a.Verdicts.SPF) + "/" + orDash(a.Verdicts.DKIM) + "/" + orDash(a.Verdicts.DMARC)
}

// Shorten cuts s to n runes with an ellipsis.
func Shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05.000Z")
}

func msText(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return (time.Duration(ms) * time.Millisecond).String()
}
