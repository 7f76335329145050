package verify

import (
	"bytes"
	"testing"
)

func FuzzDSN(f *testing.F) {
	seedFiles(f, "dsn", func(b []byte) { f.Add(b) })
	f.Add([]byte(canaryBounce))
	f.Add([]byte("Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\nContent-Type: message/delivery-status\n\n\n\n--x--"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		d, err := ParseDSN(bytes.NewReader(msg))
		if err != nil {
			if d != nil {
				t.Fatal("DSN and error both returned")
			}
			return
		}
		if d.Format != "rfc3464" && d.Format != "text" {
			t.Fatalf("format %q", d.Format)
		}
		d.Failed()
	})
}
