package forwarder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"

	"github.com/otpprobe/otpprobe/verify"
)

// evaluate runs SPF, DKIM and DMARC on an inbound message and returns the
// Authentication-Results body the forwarder records (and seals in its
// AAR): what the message looked like before the list touched it.
func (s *Server) evaluate(ctx context.Context, ip net.IP, helo, mailFrom string, raw []byte) string {
	res := s.cfg.Resolver
	sender := mailFrom
	if sender == "" {
		sender = "postmaster@" + helo
	}
	spfRes, _ := spf.CheckHostWithSender(ip, helo, sender, spf.WithResolver(res), spf.WithContext(ctx))
	spfVal := strings.ToLower(string(spfRes))
	if spfVal == "" {
		spfVal = "none"
	}
	_, spfDomain, _ := strings.Cut(sender, "@")
	parts := []string{s.cfg.AuthservID, fmt.Sprintf("spf=%s smtp.mailfrom=%s", spfVal, sender)}

	var dkimPass []string
	checks := verify.RecheckDKIM(ctx, res.LookupTXT, raw)
	for _, c := range checks {
		parts = append(parts, fmt.Sprintf("dkim=%s header.d=%s header.s=%s", c.Result, c.Domain, c.Selector))
		if c.Result == "pass" {
			dkimPass = append(dkimPass, c.Domain)
		}
	}
	if len(checks) == 0 {
		parts = append(parts, "dkim=none")
	}
	from := fromDomain(raw)
	parts = append(parts, fmt.Sprintf("dmarc=%s header.from=%s", s.dmarc(ctx, from, spfVal, spfDomain, dkimPass), from))
	return strings.Join(parts, ";\r\n\t")
}

// dmarc is a relaxed-alignment DMARC result (RFC 7489 §3.1, §6.6.3).
func (s *Server) dmarc(ctx context.Context, from, spfVal, spfDomain string, dkimPass []string) string {
	if from == "" {
		return "permerror"
	}
	lookup := &dmarc.LookupOptions{LookupTXT: func(n string) ([]string, error) { return s.cfg.Resolver.LookupTXT(ctx, n) }}
	_, err := dmarc.LookupWithOptions(from, lookup)
	if errors.Is(err, dmarc.ErrNoPolicy) && org(from) != from {
		_, err = dmarc.LookupWithOptions(org(from), lookup)
	}
	switch {
	case errors.Is(err, dmarc.ErrNoPolicy):
		return "none"
	case dmarc.IsTempFail(err):
		return "temperror"
	case err != nil:
		return "permerror"
	}
	if spfVal == "pass" && org(spfDomain) == org(from) {
		return "pass"
	}
	for _, d := range dkimPass {
		if org(d) == org(from) {
			return "pass"
		}
	}
	return "fail"
}

func org(d string) string {
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	if o, err := publicsuffix.EffectiveTLDPlusOne(d); err == nil {
		return o
	}
	return d
}

func fromDomain(raw []byte) string {
	h, err := verify.ReadHeader(bytes.NewReader(raw))
	if err != nil {
		return ""
	}
	a, err := mail.ParseAddress(h.Get("From"))
	if err != nil {
		return ""
	}
	_, d, _ := strings.Cut(a.Address, "@")
	return strings.ToLower(d)
}
