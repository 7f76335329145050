package sender_test

import (
	"errors"
	"math/rand/v2"
	"net"
	"syscall"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/lab/sender"
)

func TestOutageRefuseAndRestore(t *testing.T) {
	w := newWorld(t)
	gmail := w.mx("gmail.test", "gmail-smtp-in.l.google.test", lab.GmailIP)
	s := w.sender(nil)
	addr := s.Addr()

	if err := s.SetFaults(sender.Faults{Outage: sender.OutageRefuse}); err != nil {
		t.Fatal(err)
	}
	_, err := net.Dial("tcp", addr)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial during refuse outage: %v, want connection refused", err)
	}
	if err := s.SetFaults(sender.Faults{}); err != nil {
		t.Fatal(err)
	}
	if s.Addr() != addr {
		t.Errorf("address changed across the outage: %s -> %s", addr, s.Addr())
	}
	if _, err := send(w.submitClient(s), lab.OTPFrom, []string{"seed@gmail.test"}, canary("back", "seed@gmail.test")); err != nil {
		t.Fatalf("after restore: %v", err)
	}
	gmail.wait(t, 1)
}

func TestOutage421(t *testing.T) {
	w := newWorld(t)
	s := w.sender(nil)
	if err := s.SetFaults(sender.Faults{Outage: sender.Outage421}); err != nil {
		t.Fatal(err)
	}
	c, err := smtp.Dial(s.Addr())
	if err == nil {
		err = c.Hello("client.test")
		c.Close()
	}
	if code, ec := smtpCode(err); code != 421 || ec != (smtp.EnhancedCode{4, 3, 2}) {
		t.Fatalf("greeting during 421 outage: %v, want 421 4.3.2", err)
	}
	if got := s.Faults(); got.Outage != sender.Outage421 {
		t.Errorf("Faults() = %+v", got)
	}
	// From 421 straight to refuse and back.
	if err := s.SetFaults(sender.Faults{Outage: sender.OutageRefuse}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetFaults(sender.Faults{}); err != nil {
		t.Fatal(err)
	}
	w.submitClient(s)
}

func TestLossRateIsSeeded(t *testing.T) {
	const n, rate = 40, 0.3
	w := newWorld(t)
	gmail := w.mx("gmail.test", "gmail-smtp-in.l.google.test", lab.GmailIP)
	s := w.sender(func(c *sender.Config) { c.LossSource = rand.NewPCG(7, 11) })
	if err := s.SetFaults(sender.Faults{LossRate: rate}); err != nil {
		t.Fatal(err)
	}
	// The same seed predicts which messages are lost.
	ref := rand.New(rand.NewPCG(7, 11))
	wantLost := 0
	for range n {
		if ref.Float64() < rate {
			wantLost++
		}
	}
	c := w.submitClient(s)
	for i := range n {
		if _, err := send(c, lab.OTPFrom, []string{"seed@gmail.test"}, canary("loss", "seed@gmail.test")); err != nil {
			t.Fatalf("message %d: %v (a lost message must still get 250)", i, err)
		}
	}
	eventually(t, "queue drained", func() bool { return s.QueueLen() == 0 })
	st := s.Stats()
	if st.Submitted != n || st.Dropped != uint64(wantLost) || gmail.count() != n-wantLost {
		t.Errorf("submitted %d dropped %d delivered %d; want %d, %d, %d", st.Submitted, st.Dropped, gmail.count(), n, wantLost, n-wantLost)
	}
	if err := s.SetFaults(sender.Faults{LossRate: 1.5}); err == nil {
		t.Error("LossRate 1.5 accepted")
	}
}
