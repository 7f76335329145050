package lab

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// greeting dials a sender endpoint and reads its SMTP greeting.
func greeting(host string, port int) (string, error) {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(host, fmt.Sprint(port)), 10*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return bufio.NewReader(c).ReadString('\n')
}

// TestAgentPaths: each agent reaches the senders through its own path;
// breaking one agent's path to m365 resets that agent's connections only,
// and the healthy scenario restores it.
func TestAgentPaths(t *testing.T) {
	w, err := Start(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	eps := map[string]Endpoint{}
	for _, agent := range []string{"eu", "us"} {
		e, err := w.AgentEndpoints(agent)
		if err != nil {
			t.Fatal(err)
		}
		eps[agent] = e.Senders[0]
		if e.Senders[0].Name != SenderM365 || e.Senders[0].Port == w.Endpoints().Senders[0].Port {
			t.Fatalf("%s's m365 endpoint %+v is not a path of its own", agent, e.Senders[0])
		}
	}
	for agent, ep := range eps {
		if g, err := greeting(ep.Host, ep.Port); err != nil || !strings.HasPrefix(g, "220 ") {
			t.Fatalf("%s through its path: %q %v", agent, g, err)
		}
	}
	if err := w.SetPathDown("eu", SenderM365, true); err != nil {
		t.Fatal(err)
	}
	if g, err := greeting(eps["eu"].Host, eps["eu"].Port); err == nil {
		t.Errorf("eu's broken path still greets: %q", g)
	}
	if g, err := greeting(eps["us"].Host, eps["us"].Port); err != nil || !strings.HasPrefix(g, "220 ") {
		t.Errorf("us's path broke with eu's: %q %v", g, err)
	}
	if st := w.State(); len(st.Paths) != 4 || !st.Paths[1].Down || st.Paths[1].Agent != "eu" || st.Paths[1].Sender != SenderM365 || st.Paths[0].Down {
		t.Errorf("state paths %+v", st.Paths)
	}
	if err := w.Apply(Healthy); err != nil {
		t.Fatal(err)
	}
	if g, err := greeting(eps["eu"].Host, eps["eu"].Port); err != nil || !strings.HasPrefix(g, "220 ") {
		t.Errorf("eu's path after healthy: %q %v", g, err)
	}
	if err := w.SetPathDown("eu", "nope", true); err == nil {
		t.Error("an unknown sender's path was accepted")
	}
}
