package sender

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

const (
	dialTimeout       = 10 * time.Second
	commandTimeout    = 30 * time.Second
	submissionTimeout = 60 * time.Second
)

// rcptStatus is the result of one attempt for one recipient; err nil
// means the remote MTA accepted it.
type rcptStatus struct {
	rcpt string
	err  *DeliveryError
}

func allFailed(rcpts []string, err *DeliveryError) []rcptStatus {
	out := make([]rcptStatus, len(rcpts))
	for i, r := range rcpts {
		out[i] = rcptStatus{rcpt: r, err: err}
	}
	return out
}

// attempt delivers d once: MX hosts in preference order, each of their
// addresses in turn, moving on only while the failure is about reaching a
// host (RFC 5321 §5.1); once a transaction starts its replies are final
// for this attempt.
func (s *Server) attempt(ctx context.Context, d *delivery) []rcptStatus {
	hosts, derr := s.mxHosts(ctx, d.domain)
	if derr != nil {
		return allFailed(d.rcpts, derr)
	}
	last := &DeliveryError{Stage: StageDNS, Temporary: true, Err: fmt.Errorf("no usable MX host for %s", d.domain)}
	for _, host := range hosts {
		ips, err := s.cfg.Resolver.LookupIPAddr(ctx, host)
		if err == nil && len(ips) == 0 {
			err = &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
		}
		if err != nil {
			last = dnsFailure(host, err, smtp.EnhancedCode{5, 4, 4})
			continue
		}
		for _, ip := range ips {
			res, connErr := s.transact(ctx, host, ip.IP, d)
			if connErr == nil {
				return res
			}
			last = connErr
			s.log.Info("relay host failed", "queue_id", d.msg.id, "mx", host, "ip", ip.IP.String(), "err", connErr)
			if ctx.Err() != nil {
				return allFailed(d.rcpts, last)
			}
		}
	}
	return allFailed(d.rcpts, last)
}

// mxHosts returns the host names to try for domain, best first: its MX
// hosts, or the domain itself when it has none (implicit MX).
func (s *Server) mxHosts(ctx context.Context, domain string) ([]string, *DeliveryError) {
	mxs, err := s.cfg.Resolver.LookupMX(ctx, domain)
	if err != nil {
		var de *net.DNSError
		switch {
		case errors.As(err, &de) && de.IsNotFound:
			mxs = nil // no MX: fall back to the address records
		case len(mxs) == 0:
			return nil, dnsFailure(domain, err, smtp.EnhancedCode{5, 1, 2})
		}
		// Otherwise keep the well-formed records returned beside the error.
	}
	if len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
		return nil, &DeliveryError{Stage: StageDNS, Enhanced: smtp.EnhancedCode{5, 1, 10},
			Err: fmt.Errorf("domain %s does not accept mail (null MX)", domain)}
	}
	if len(mxs) == 0 {
		return []string{domain}, nil
	}
	mxs = slices.Clone(mxs)
	slices.SortStableFunc(mxs, func(a, b *net.MX) int { return int(a.Pref) - int(b.Pref) })
	hosts := make([]string, 0, len(mxs))
	for _, mx := range mxs {
		if h := strings.TrimSuffix(mx.Host, "."); h != "" {
			hosts = append(hosts, h)
		}
	}
	return hosts, nil
}

// dnsFailure classifies a lookup error: "no such name" is permanent (with
// status notFound), anything else is worth retrying.
func dnsFailure(name string, err error, notFound smtp.EnhancedCode) *DeliveryError {
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound {
		return &DeliveryError{Stage: StageDNS, Enhanced: notFound, Err: err}
	}
	return &DeliveryError{Stage: StageDNS, Temporary: true, Enhanced: smtp.EnhancedCode{4, 4, 3}, Err: err}
}

// transact runs one SMTP session with host at ip. A non-nil second result
// means the host could not be used at all (connect, greeting, TLS, EHLO)
// and the next one should be tried.
func (s *Server) transact(ctx context.Context, host string, ip net.IP, d *delivery) ([]rcptStatus, *DeliveryError) {
	dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: s.sourceIP}, Timeout: dialTimeout}
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(s.cfg.MXPort))
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &DeliveryError{Stage: StageConnect, RemoteMTA: host, Temporary: true, Err: err}
	}
	// go-smtp takes no context: closing the connection unblocks it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	tlsConfig := &tls.Config{RootCAs: s.cfg.RootCAs, ServerName: host, MinVersion: tls.VersionTLS12}
	c, err := smtp.NewClientStartTLS(conn, tlsConfig)
	if err != nil {
		conn.Close()
		stage := StageConnect
		var se *smtp.SMTPError
		if !errors.As(err, &se) && strings.Contains(err.Error(), "STARTTLS") {
			stage = StageTLS
		}
		return nil, classify(stage, host, err)
	}
	defer c.Close()
	c.CommandTimeout = commandTimeout
	c.SubmissionTimeout = submissionTimeout

	// The TLS handshake is lazy: it runs on this EHLO, so a certificate
	// error surfaces here, as a non-SMTP error.
	if err := c.Hello(s.cfg.Hostname); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return nil, classify(StageHelo, host, err)
		}
		return nil, classify(StageTLS, host, err)
	}

	if err := c.Mail(d.msg.from, &smtp.MailOptions{Size: int64(len(d.msg.data))}); err != nil {
		return allFailed(d.rcpts, classify(StageMail, host, err)), nil
	}
	res := make([]rcptStatus, 0, len(d.rcpts))
	var accepted []string
	for _, r := range d.rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			res = append(res, rcptStatus{rcpt: r, err: classify(StageRcpt, host, err)})
			continue
		}
		accepted = append(accepted, r)
	}
	if len(accepted) == 0 {
		c.Quit()
		return res, nil
	}
	dataErr := func() error {
		w, err := c.Data()
		if err != nil {
			return err
		}
		if _, err := w.Write(d.msg.data); err != nil {
			w.Close()
			return err
		}
		resp, err := w.CloseWithResponse()
		if err == nil {
			s.log.Debug("relay accepted", "queue_id", d.msg.id, "mx", host, "reply", resp.StatusText)
		}
		return err
	}()
	var derr *DeliveryError
	if dataErr != nil {
		derr = classify(StageData, host, dataErr)
	}
	for _, r := range accepted {
		res = append(res, rcptStatus{rcpt: r, err: derr})
	}
	if err := c.Quit(); err != nil && dataErr == nil {
		s.log.Debug("relay quit", "mx", host, "err", err)
	}
	return res, nil
}

// backoff is the delay before retry n (n >= 1): doubling from
// RetryInterval, capped at 16 times it.
func (s *Server) backoff(n int) time.Duration {
	d := s.cfg.RetryInterval
	for i := 1; i < n && d < 16*s.cfg.RetryInterval; i++ {
		d *= 2
	}
	return min(d, 16*s.cfg.RetryInterval)
}

// work runs one relay worker until ctx ends.
func (s *Server) work(ctx context.Context) {
	for {
		d, ok := s.queue.next(ctx)
		if !ok {
			return
		}
		s.handle(ctx, d)
	}
}

// handle makes one attempt for d and decides, per recipient, between
// delivered, retry later and bounce.
func (s *Server) handle(ctx context.Context, d *delivery) {
	d.attempts++
	actx, cancel := context.WithTimeout(ctx, s.cfg.AttemptTimeout)
	res := s.attempt(actx, d)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: the queue is dropped with the server
	}
	var temp, perm []rcptStatus
	for _, r := range res {
		switch {
		case r.err == nil:
			s.stats.relayed.Add(1)
		case r.err.Temporary:
			temp = append(temp, r)
		default:
			perm = append(perm, r)
		}
	}
	if len(res) > len(temp)+len(perm) {
		s.log.Info("relayed", "queue_id", d.msg.id, "domain", d.domain, "rcpts", len(res)-len(temp)-len(perm), "attempt", d.attempts)
	}
	if len(perm) > 0 {
		s.bounce(d.msg, perm)
	}
	if len(temp) == 0 {
		s.queue.done(d)
		return
	}
	remaining := s.cfg.RetryExpiry - time.Since(d.msg.arrival)
	if remaining <= 0 {
		s.log.Info("retries expired", "queue_id", d.msg.id, "domain", d.domain, "attempts", d.attempts, "err", temp[0].err)
		s.bounce(d.msg, temp)
		s.queue.done(d)
		return
	}
	delay := min(s.backoff(d.attempts), remaining)
	s.stats.deferred.Add(uint64(len(temp)))
	s.log.Info("deferred", "queue_id", d.msg.id, "domain", d.domain, "attempt", d.attempts, "retry_in", delay, "err", temp[0].err)
	d.rcpts = d.rcpts[:0:0]
	for _, r := range temp {
		d.rcpts = append(d.rcpts, r.rcpt)
	}
	s.queue.retry(d, delay)
}
