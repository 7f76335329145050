package verify

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
)

func dkimSigned(t *testing.T, key ed25519.PrivateKey, selector string) []byte {
	t.Helper()
	var out bytes.Buffer
	err := dkim.Sign(&out, strings.NewReader(sealTestMessage), &dkim.SignOptions{
		Domain: "example-bank.test", Selector: selector, Signer: key,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func headerOf(msg []byte) []byte {
	i := bytes.Index(msg, []byte("\r\n\r\n"))
	return msg[:i+4]
}

// The re-check names the selector that signed and tells a changed body
// (whole message) from a changed header (both forms) and from DNS trouble.
func TestRecheckDKIM(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	msg := dkimSigned(t, key, "selector1")
	good := staticTXT(map[string]string{"selector1._domainkey.example-bank.test": testKeyRecord(t, key.Public())})
	wrong := staticTXT(map[string]string{"selector1._domainkey.example-bank.test": testKeyRecord(t, other.Public())})
	servfail := func(context.Context, string) ([]string, error) {
		return nil, &net.DNSError{Err: "server misbehaving", IsTemporary: true}
	}
	body := bytes.Replace(msg, []byte("483920"), []byte("000000"), 1)
	subj := bytes.Replace(msg, []byte("Subject: Your code"), []byte("Subject: [list] Your code"), 1)
	for _, tc := range []struct {
		name       string
		lookup     LookupTXT
		msg        []byte
		full, head string // results of RecheckDKIM and RecheckDKIMHeader
	}{
		{"intact", good, msg, "pass", "pass"},
		{"body changed", good, body, "fail", "pass"},
		{"subject changed", good, subj, "fail", "fail"},
		{"no key", staticTXT(nil), msg, "permerror", "permerror"},
		{"other key", wrong, msg, "fail", "fail"},
		{"servfail", servfail, msg, "temperror", "temperror"},
		{"no resolver", nil, msg, "temperror", "temperror"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			full := RecheckDKIM(context.Background(), tc.lookup, tc.msg)
			head := RecheckDKIMHeader(context.Background(), tc.lookup, headerOf(tc.msg))
			if len(full) != 1 || len(head) != 1 {
				t.Fatalf("got %d and %d checks, want 1 each", len(full), len(head))
			}
			if full[0].Result != tc.full || !full[0].BodyChecked {
				t.Errorf("RecheckDKIM = %+v, want %s", full[0], tc.full)
			}
			if head[0].Result != tc.head || head[0].BodyChecked {
				t.Errorf("RecheckDKIMHeader = %+v, want %s", head[0], tc.head)
			}
			for _, c := range []DKIMCheck{full[0], head[0]} {
				if c.Selector != "selector1" || c.Domain != "example-bank.test" {
					t.Errorf("check names %s/%s", c.Domain, c.Selector)
				}
				if (c.Result == "pass") != (c.Error == "") {
					t.Errorf("result %s with error %q", c.Result, c.Error)
				}
			}
		})
	}
}

func TestRecheckDKIMUnsigned(t *testing.T) {
	if got := RecheckDKIM(context.Background(), nil, []byte(sealTestMessage)); got != nil {
		t.Errorf("unsigned message: %+v", got)
	}
	if got := RecheckDKIMHeader(context.Background(), nil, []byte("DKIM-Signature: v=1; d=x.test\r\n\r\n")); len(got) != 1 || got[0].Result != "permerror" {
		t.Errorf("malformed signature: %+v", got)
	}
}
