package resolver_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"blitiri.com.ar/go/spf"
	"github.com/otpprobe/otpprobe/lab/dnsserver"
	"github.com/otpprobe/otpprobe/verify/resolver"
)

// The resolver behind SPF evaluation: an include that answers SERVFAIL
// makes the result temperror, as at a real receiver.
func Example() {
	s, err := dnsserver.Start("127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer s.Close()
	s.Load([]string{
		`example-bank.test. 300 IN TXT "v=spf1 include:spf.protection.outlook.test -all"`,
		`spf.protection.outlook.test. 300 IN TXT "v=spf1 ip4:127.0.0.11 -all"`,
	})
	r, err := resolver.New(resolver.Config{Servers: []string{s.Addr()}, Timeout: time.Second})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	check := func() spf.Result {
		res, _ := spf.CheckHostWithSender(net.ParseIP("127.0.0.11"), "", "otp@example-bank.test",
			spf.WithResolver(r), spf.WithContext(ctx))
		return res
	}
	fmt.Println(check())
	s.SetFault("spf.protection.outlook.test", dnsserver.FaultServfail)
	fmt.Println(check())
	_, err = r.LookupTXT(ctx, "spf.protection.outlook.test")
	de := err.(*net.DNSError)
	fmt.Println(de.Err, de.Temporary(), de.IsNotFound)
	// Output:
	// pass
	// temperror
	// server misbehaving (SERVFAIL) true false
}
