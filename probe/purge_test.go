package probe

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// TestPurgeTrash: only our own canaries older than the cut-off leave the
// Trash; a person's deleted mail and recent canaries stay.
func TestPurgeTrash(t *testing.T) {
	w := newWorld(t)
	c := w.client()
	old := time.Now().Add(-10 * 24 * time.Hour)
	for _, m := range []struct {
		body string
		at   time.Time
	}{
		{"X-Otpprobe-Id: otp-old1\r\nSubject: Your code [otp-old1]\r\n\r\n123456\r\n", old},
		{"X-Otpprobe-Id: otp-old2\r\nSubject: Your code [otp-old2]\r\n\r\n654321\r\n", old},
		{"Subject: a person's old mail\r\n\r\nhello\r\n", old},
		{"X-Otpprobe-Id: otp-new\r\nSubject: Your code [otp-new]\r\n\r\n111111\r\n", time.Now()},
	} {
		cmd := c.Append(testTrash, int64(len(m.body)), &imap.AppendOptions{Time: m.at})
		if _, err := cmd.Write([]byte(m.body)); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	mb := w.mailbox()
	mb.Trash = testTrash
	n, err := PurgeTrash(context.Background(), mb, staticCreds(testUser, testPassword), time.Now().Add(-7*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("purged %d, want the 2 old canaries", n)
	}
	left := w.messages(w.client(), testTrash)
	if len(left) != 2 {
		t.Fatalf("%d messages left in Trash, want 2", len(left))
	}
	for _, m := range left {
		if bytes.Contains([]byte(m.header), []byte("otp-old")) {
			t.Errorf("an old canary is still there: %q", m.header)
		}
	}
}
