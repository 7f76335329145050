package verify_test

import (
	"fmt"
	"strings"

	"github.com/otpprobe/otpprobe/verify"
)

func ExampleParseAuthResults() {
	// Exchange Online writes no authserv-id and puts tenant names between
	// results; go-msgauth's authres.Parse gives up on this header.
	ar, err := verify.ParseAuthResults("spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=contoso.com; contoso.com; " +
		"dkim=pass (signature was verified) header.d=contoso.com;dmarc=pass action=none header.from=contoso.com;compauth=pass reason=100")
	if err != nil {
		panic(err)
	}
	for _, r := range ar.Results {
		fmt.Printf("%s=%s reason=%q props=%v comment=%q\n", r.Method, r.Result, r.Reason, r.Props, r.Comment)
	}
	// Output:
	// spf=pass reason="" props=map[smtp.mailfrom:contoso.com] comment="sender IP is 192.0.2.1"
	// dkim=pass reason="" props=map[header.d:contoso.com] comment="signature was verified"
	// dmarc=pass reason="" props=map[action:none header.from:contoso.com] comment=""
	// compauth=pass reason="100" props=map[] comment=""
}

func ExampleSummarize() {
	block := "Authentication-Results: mx.google.com;\n" +
		"       dkim=pass header.i=@esp.example header.s=s1 header.b=AAAA;\n" +
		"       dkim=fail header.i=@shop.example header.s=k1 header.b=BBBB;\n" +
		"       spf=pass (google.com: domain of b@esp.example designates 192.0.2.7 as permitted sender) smtp.mailfrom=b@esp.example;\n" +
		"       dmarc=fail (p=REJECT sp=REJECT dis=QUARANTINE) header.from=shop.example\n" +
		"Authentication-Results: mx.google.com; dmarc=pass header.from=shop.example\n\n"
	h, err := verify.ReadHeader(strings.NewReader(block))
	if err != nil {
		panic(err)
	}
	v := verify.Summarize(h, "mx.google.com")
	fmt.Println(v.Trusted, v.SPF, v.DKIM, v.DMARC, len(v.Untrusted))
	// Output: true pass fail fail 1
}
