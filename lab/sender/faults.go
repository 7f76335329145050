package sender

import (
	"net"
	"sync/atomic"
	"time"
)

// OutageMode is how the submission service is down.
type OutageMode int

const (
	OutageNone   OutageMode = iota
	OutageRefuse            // listener closed: connections are refused
	Outage421               // TCP accepted, "421 4.3.2" greeting, then closed
)

func (m OutageMode) String() string {
	switch m {
	case OutageNone:
		return "none"
	case OutageRefuse:
		return "refuse"
	case Outage421:
		return "421"
	}
	return "unknown"
}

// Faults change how the service behaves, the way real outages do. They
// never touch what the receivers decide.
type Faults struct {
	Outage OutageMode
	// LossRate is the fraction (0..1) of accepted submissions that are
	// answered 250 and then silently dropped.
	LossRate float64
	// BasicAuthDisabled answers AUTH PLAIN and LOGIN with Exchange
	// Online's 535 5.7.139: only OAuth2 (XOAUTH2) still logs in.
	BasicAuthDisabled bool
}

const outageGreeting = "421 4.3.2 Service not available\r\n"

// outageListener answers every connection with a 421 greeting while the
// service is in Outage421, and passes connections through otherwise.
type outageListener struct {
	net.Listener
	mode *atomic.Int32
}

func (l *outageListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if OutageMode(l.mode.Load()) != Outage421 {
			return c, nil
		}
		// Never block the accept loop on a slow client.
		go func() {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte(outageGreeting))
			c.Close()
		}()
	}
}
