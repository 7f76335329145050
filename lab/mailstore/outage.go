package mailstore

import (
	"net"
	"sync"
)

// gate is the server's listener with an outage switch: while down, every
// connection is closed as soon as it is accepted, and the ones open when
// the outage began are cut, so clients see the provider's IMAP service
// refuse them until it is back.
type gate struct {
	net.Listener

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}

	// serving is closed at the first Accept: imapserver.Serve has then
	// registered itself (its WaitGroup.Add), so a Close from now on cannot
	// race with it (go-imap v2 adds to the WaitGroup after unlocking).
	serving     chan struct{}
	servingOnce sync.Once
}

func newGate(ln net.Listener) *gate {
	return &gate{Listener: ln, conns: map[net.Conn]struct{}{}, serving: make(chan struct{})}
}

func (g *gate) Accept() (net.Conn, error) {
	g.servingOnce.Do(func() { close(g.serving) })
	for {
		c, err := g.Listener.Accept()
		if err != nil {
			return nil, err
		}
		g.mu.Lock()
		if g.down {
			g.mu.Unlock()
			c.Close()
			continue
		}
		tc := &trackedConn{Conn: c, g: g}
		g.conns[tc] = struct{}{}
		g.mu.Unlock()
		return tc, nil
	}
}

// setDown starts or ends the outage.
func (g *gate) setDown(down bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.down = down
	if down {
		for c := range g.conns {
			c.(*trackedConn).Conn.Close()
		}
	}
}

type trackedConn struct {
	net.Conn
	g    *gate
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.g.mu.Lock()
		delete(c.g.conns, c)
		c.g.mu.Unlock()
	})
	return c.Conn.Close()
}

// SetOutage makes the server refuse IMAP connections (and drop the open
// ones) until it is called with false.
func (s *Server) SetOutage(down bool) { s.gate.setDown(down) }
