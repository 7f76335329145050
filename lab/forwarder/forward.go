package forwarder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/otpprobe/otpprobe/verify"
)

// forward evaluates, rewrites, seals and relays one message to members.
func (s *Server) forward(ctx context.Context, c *smtp.Conn, from string, members []string, raw []byte) error {
	ip := clientIP(c)
	ar := s.evaluate(ctx, ip, c.Hostname(), from, raw)
	cv := "none"
	if h, err := verify.ReadHeader(bytes.NewReader(raw)); err == nil {
		chain := verify.ParseARC(h)
		if chain.Instances > 0 {
			chain = verify.VerifyARC(ctx, verify.ARCValidator{Lookup: s.cfg.Resolver.LookupTXT}, bytes.NewReader(raw), chain)
			cv = chain.CV
		}
	}
	if cv != "none" {
		ar += "; arc=" + cv
	}
	now := time.Now()
	body := rewrite(raw, s.cfg.SubjectTag, "list."+s.cfg.Domain)
	received := fmt.Sprintf("Received: from %s ([%s])\r\n\tby %s with ESMTPS; %s\r\n",
		c.Hostname(), ip, s.cfg.Hostname, now.Format(time.RFC1123Z))
	msg := []byte("Authentication-Results: " + ar + "\r\n" + received + string(body))
	set, err := s.cfg.Sealer.Seal(msg, ar, cv)
	if err != nil {
		s.log.Error("arc seal failed", "err", err)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Local error while sealing"}
	}
	msg = append([]byte(set), msg...)
	// Like most lists the forwarder bounces to itself (VERP-less): SPF
	// then passes for the list domain and is not aligned with From.
	envFrom := "list-bounces@" + s.cfg.Domain
	if from == "" {
		envFrom = "" // never turn a bounce into mail that can bounce
	}
	for _, rcpt := range members {
		if err := s.relay(ctx, envFrom, rcpt, msg); err != nil {
			s.log.Info("forward refused", "rcpt", rcpt, "err", err)
			var se *smtp.SMTPError
			if errors.As(err, &se) {
				return se
			}
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 0}, Message: "Forwarding failed: " + err.Error()}
		}
		s.log.Info("forwarded", "mail_from", from, "rcpt", rcpt, "arc_cv", cv)
	}
	return nil
}

// rewrite tags the Subject and adds List-Id, as list software does.
func rewrite(raw []byte, tag, listID string) []byte {
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	sep := "\r\n"
	if end < 0 {
		if end = bytes.Index(raw, []byte("\n\n")); end < 0 {
			end = len(raw)
		} else {
			sep = "\n"
		}
	}
	head, rest := string(raw[:end]), raw[end:]
	lines := strings.Split(head, sep)
	for i, l := range lines {
		if tag != "" && len(l) > 8 && strings.EqualFold(l[:8], "subject:") && !strings.Contains(l, tag) {
			lines[i] = l[:8] + " " + tag + " " + strings.TrimLeft(l[8:], " \t")
			break
		}
	}
	lines = append(lines, "List-Id: <"+listID+">")
	return append([]byte(strings.Join(lines, sep)), rest...)
}

func clientIP(c *smtp.Conn) net.IP {
	if a, ok := c.Conn().RemoteAddr().(*net.TCPAddr); ok {
		return a.IP
	}
	return nil
}
