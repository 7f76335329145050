package receiver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// receive evaluates one message and delivers it, or returns the SMTP error
// to answer DATA with.
func (s *Server) receive(h *host, c *smtp.Conn, from string, rcpts []string, raw []byte) error {
	start := time.Now()
	p := h.Profile
	ip := remoteIP(c)
	hdr, fromDomain, err := parseMessage(raw)
	if err != nil {
		var me *MessageError
		if !errors.As(err, &me) {
			return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message rejected: " + err.Error()}
		}
		if me.Header {
			// The reason without the Go package prefix: this is an SMTP reply.
			return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message rejected: " + me.Reason}
		}
		// Gmail: "Messages missing a valid address in From: header, or
		// having no From: header, are not accepted."
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message rejected: " + me.Reason}
	}

	faults := s.Faults(p.Name)
	if faults.Greylist {
		msgID := strings.TrimSpace(hdr.Get("Message-Id"))
		keys := make([]string, len(rcpts))
		for i, r := range rcpts {
			keys[i] = strings.Join([]string{p.Name, ip.String(), from, r, msgID}, "\x00")
		}
		if s.greylisted(keys) {
			s.log.Info("greylisted", "provider", p.Name, "client_ip", ip.String(), "mail_from", from, "message_id", msgID)
			return errGreylisted
		}
	}

	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.EvalTimeout)
	res := evaluate(ctx, s.cfg.Resolver, ip, c.Hostname(), from, hdr, fromDomain, raw)
	cancel()
	d := decide(p, res)

	folder := "INBOX"
	if d.Junk {
		folder = h.Store.JunkFolder()
	}
	s.log.Info("message evaluated", "provider", p.Name, "client_ip", ip.String(), "helo", c.Hostname(),
		"mail_from", from, "rcpts", rcpts, "spf", res.SPF.Value, "dkim", dkimValues(res), "dmarc", res.DMARC.Value,
		"decision", actionName(d.Action), "folder", folder, "why", d.Why, "faults", fmt.Sprintf("%+v", faults),
		"took", time.Since(start))
	if d.Reply != nil {
		return d.Reply
	}

	t := trace{ClientIP: ip, Helo: c.Hostname(), MailFrom: from, At: time.Now()}
	if st, ok := c.TLSConnectionState(); ok {
		t.TLS = &st
	}
	seq := s.nextSeq()
	t.ID = fmt.Sprintf("%013x%03dsi%x.%d.%s", t.At.UnixNano()&0xfffffffffffff, seq%1000, seq, seq%1000, t.At.UTC().Format("2006.01.02.15.04.05"))

	for _, rcpt := range rcpts {
		t.Rcpt = rcpt + "@" + p.Domain
		msg := append(render(traceHeaders(p, t, res, d)), raw...)
		if faults.Drop {
			continue
		}
		if faults.Delay > 0 {
			if !s.hold(faults.Delay, h, rcpt, folder, msg) {
				return errMailboxUnavailable // closing down
			}
			continue
		}
		if _, err := h.Store.Deliver(rcpt, folder, msg); err != nil {
			s.log.Error("delivery failed", "provider", p.Name, "rcpt", rcpt, "folder", folder, "err", err)
			return errMailboxUnavailable
		}
	}
	return nil
}

// hold delivers msg after delay, unless the server closes first. It reports
// false when the server is already closing.
func (s *Server) hold(delay time.Duration, h *host, rcpt, folder string, msg []byte) bool {
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		return false
	}
	s.wg.Add(1) // under mu, before Close's Wait (Close cancels under mu first)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		timer := time.NewTimer(delay)
		defer timer.Stop()
		select {
		case <-s.ctx.Done():
			s.log.Warn("held delivery abandoned at close", "provider", h.Profile.Name, "rcpt", rcpt)
			return
		case <-timer.C:
		}
		if _, err := h.Store.Deliver(rcpt, folder, msg); err != nil {
			s.log.Error("held delivery failed", "provider", h.Profile.Name, "rcpt", rcpt, "folder", folder, "err", err)
		}
	}()
	return true
}

func remoteIP(c *smtp.Conn) net.IP {
	if a, ok := c.Conn().RemoteAddr().(*net.TCPAddr); ok {
		return a.IP
	}
	return net.IPv4zero
}

func dkimValues(r *Results) string {
	var vs []string
	for _, d := range r.DKIM {
		vs = append(vs, d.Value+"("+d.Domain+"/"+d.Selector+")")
	}
	if len(vs) == 0 {
		return ValNone
	}
	return strings.Join(vs, ",")
}

func actionName(a Action) string {
	switch a {
	case Junk:
		return "junk"
	case Reject:
		return "reject"
	case Defer:
		return "defer"
	case AsFail:
		return "as-fail"
	}
	return "deliver"
}
