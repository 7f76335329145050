package lab

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"sync"
)

// Agent paths: the network between one agent (a prober in one region)
// and a sending service. AgentEndpoints gives an agent its own path to
// every sender — a TCP relay on the sender's address, so its certificate
// still matches — and SetPathDown breaks one agent's path to one sender
// the way a regional network fault does: connections are reset, whatever
// the service itself is doing, while the other agents still get through.
// The prober is unchanged; only the port in its config differs.

// paths are the world's agent paths, by agent and sender.
type paths struct {
	mu     sync.Mutex
	byKey  map[pathKey]*path
	closed bool
}

type pathKey struct{ agent, sender string }

// path is one agent's relay to one sender.
type path struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// PathState is one agent's path to a sender, for the control API.
type PathState struct {
	Agent  string `json:"agent"`
	Sender string `json:"sender"`
	Addr   string `json:"addr"`
	Down   bool   `json:"down"`
}

// AgentEndpoints is Endpoints for the prober named agent: its senders are
// reached through the agent's own paths (made on first use).
func (w *World) AgentEndpoints(agent string) (*Endpoints, error) {
	if agent == "" {
		return nil, errors.New("lab: agent path: the agent name is empty")
	}
	e := w.Endpoints()
	for i, s := range e.Senders {
		p, err := w.paths.get(agent, s.Name, w.senders[s.Name].Addr())
		if err != nil {
			return nil, err
		}
		host, port := splitHostPort(p.ln.Addr().String())
		e.Senders[i].Host, e.Senders[i].Port = host, port
	}
	return e, nil
}

// SetPathDown breaks (or restores) agent's path to sender.
func (w *World) SetPathDown(agent, sender string, down bool) error {
	s, ok := w.senders[sender]
	if !ok {
		return fmt.Errorf("lab: agent path: unknown sender %q", sender)
	}
	p, err := w.paths.get(agent, sender, s.Addr())
	if err != nil {
		return err
	}
	p.setDown(down)
	w.log.Info("lab agent path", "agent", agent, "sender", sender, "down", down)
	return nil
}

// Paths lists every agent path, by agent then sender.
func (w *World) Paths() []PathState {
	w.paths.mu.Lock()
	defer w.paths.mu.Unlock()
	var out []PathState
	for k, p := range w.paths.byKey {
		p.mu.Lock()
		out = append(out, PathState{Agent: k.agent, Sender: k.sender, Addr: p.ln.Addr().String(), Down: p.down})
		p.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Agent != out[j].Agent {
			return out[i].Agent < out[j].Agent
		}
		return out[i].Sender < out[j].Sender
	})
	return out
}

func (ps *paths) get(agent, sender, target string) (*path, error) {
	if agent == "" {
		return nil, errors.New("lab: agent path: the agent name is empty")
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.closed {
		return nil, errors.New("lab: the world is closed")
	}
	k := pathKey{agent, sender}
	if p := ps.byKey[k]; p != nil {
		return p, nil
	}
	host, _, _ := net.SplitHostPort(target)
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, fmt.Errorf("lab: agent path %s → %s: %w", agent, sender, err)
	}
	p := &path{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Go(p.serve)
	if ps.byKey == nil {
		ps.byKey = map[pathKey]*path{}
	}
	ps.byKey[k] = p
	return p, nil
}

// reset restores every path (the healthy scenario).
func (ps *paths) reset() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, p := range ps.byKey {
		p.setDown(false)
	}
}

func (ps *paths) close() {
	ps.mu.Lock()
	ps.closed = true
	all := ps.byKey
	ps.byKey = nil
	ps.mu.Unlock()
	for _, p := range all {
		p.ln.Close()
		p.setDown(true) // drops the open connections
		p.wg.Wait()
	}
}

func (p *path) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			reset(c)
		}
	}
}

func (p *path) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			reset(c)
			continue
		}
		p.conns[c] = true
		p.mu.Unlock()
		p.wg.Go(func() { p.relay(c) })
	}
}

// relay copies both ways between c and the sender until either side ends.
func (p *path) relay(c net.Conn) {
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		c.Close()
	}()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	// Either side ended: end both, so the other copy returns too.
	c.Close()
	up.Close()
	<-done
}

// reset closes c with a TCP RST, as a broken network path does.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
