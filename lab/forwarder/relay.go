package forwarder

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// relay delivers msg to rcpt's MX from the forwarder's own address. The
// first MX host that answers decides; its SMTP error is returned as is.
func (s *Server) relay(ctx context.Context, from, rcpt string, msg []byte) error {
	_, domain, ok := strings.Cut(rcpt, "@")
	if !ok {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad member address " + rcpt}
	}
	mxs, err := s.cfg.Resolver.LookupMX(ctx, domain)
	if err == nil && len(mxs) == 0 {
		err = errors.New("no MX records")
	}
	if err != nil {
		return fmt.Errorf("MX of %s: %w", domain, err)
	}
	mxs = slices.Clone(mxs)
	slices.SortStableFunc(mxs, func(a, b *net.MX) int { return int(a.Pref) - int(b.Pref) })
	var last error
	for _, mx := range mxs {
		host := strings.TrimSuffix(mx.Host, ".")
		ips, err := s.cfg.Resolver.LookupIPAddr(ctx, host)
		if err == nil && len(ips) == 0 {
			err = errors.New("no addresses")
		}
		if err != nil {
			last = fmt.Errorf("address of %s: %w", host, err)
			continue
		}
		err = s.deliver(ctx, host, ips[0].IP, from, rcpt, msg)
		var se *smtp.SMTPError
		if err == nil || errors.As(err, &se) {
			return err
		}
		last = err
	}
	return last
}

func (s *Server) deliver(ctx context.Context, host string, ip net.IP, from, rcpt string, msg []byte) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(s.cfg.IP)}, Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ip.String(), strconv.Itoa(s.cfg.Port)))
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() }) // go-smtp takes no context
	defer stop()
	c, err := smtp.NewClientStartTLS(conn, &tls.Config{RootCAs: s.cfg.RootCAs, ServerName: host, MinVersion: tls.VersionTLS12})
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	c.CommandTimeout = 30 * time.Second
	c.SubmissionTimeout = 30 * time.Second
	// The TLS handshake runs lazily on this EHLO.
	if err := c.Hello(s.cfg.Hostname); err != nil {
		return err
	}
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	_ = c.Quit()
	return nil
}
