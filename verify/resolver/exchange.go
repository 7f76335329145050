package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/miekg/dns"
)

// exchange sends one question with retries: each try goes to the next
// server with its own deadline (Timeout, or sooner if ctx says so). SERVFAIL
// and REFUSED also move on to the next server; if every try fails that way,
// the last such answer is returned without error.
func (r *Resolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, string, error) {
	var (
		lastErr    error
		lastServer string
		lastMsg    *dns.Msg
	)
	for try := 0; try < r.tries; try++ {
		server := r.servers[try%len(r.servers)]
		if ctx.Err() != nil {
			lastErr, lastServer = ctx.Err(), server
			break
		}
		in, err := r.try(ctx, name, qtype, server)
		if err != nil {
			lastErr, lastServer = err, server
			continue
		}
		if in.Rcode == dns.RcodeServerFailure || in.Rcode == dns.RcodeRefused {
			lastMsg, lastServer = in, server
			continue
		}
		return in, server, nil
	}
	if lastMsg != nil && ctx.Err() == nil {
		return lastMsg, lastServer, nil
	}
	return nil, lastServer, transportError(ctx, name, lastServer, lastErr)
}

// try is one exchange with one server: UDP, then TCP if the answer was
// truncated. Cancellation closes the connection, since miekg/dns honours
// only the context's deadline once connected.
func (r *Resolver) try(ctx context.Context, name string, qtype uint16, server string) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(r.udpSize, r.dnssec)
	m.AuthenticatedData = r.dnssec

	in, err := r.once(ctx, r.udp, m, server)
	if err == nil && in.Truncated {
		m.Id = dns.Id()
		in, err = r.once(ctx, r.tcp, m, server)
	}
	if err != nil {
		return nil, err
	}
	if len(in.Question) != 1 || in.Question[0].Qtype != qtype || !strings.EqualFold(in.Question[0].Name, m.Question[0].Name) {
		return nil, fmt.Errorf("answer from %s does not match the question", server)
	}
	return in, nil
}

func (r *Resolver) once(ctx context.Context, c *dns.Client, m *dns.Msg, server string) (*dns.Msg, error) {
	tctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	conn, err := c.DialContext(tctx, server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(tctx, func() { conn.Close() })
	defer stop()
	in, _, err := c.ExchangeWithConnContext(tctx, m, conn)
	if err != nil && tctx.Err() != nil {
		// The connection was closed under us: report why.
		return nil, tctx.Err()
	}
	return in, err
}

// transportError shapes a failed exchange like the net package does.
func transportError(ctx context.Context, name, server string, err error) *net.DNSError {
	if ctxErr := ctx.Err(); ctxErr != nil {
		err = ctxErr
	}
	de := &net.DNSError{Err: err.Error(), Name: name, Server: server, UnwrapErr: err}
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		de.Err = "operation was canceled"
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		de.Err = "i/o timeout"
		de.IsTimeout = true
		de.IsTemporary = true
	default:
		de.IsTemporary = true
	}
	return de
}
