package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/otpprobe/otpprobe/lab"
	"github.com/otpprobe/otpprobe/reports/alert"
	"github.com/otpprobe/otpprobe/reports/failover"
	"github.com/otpprobe/otpprobe/reports/store"
)

// agentConfigEnv makes the test binary run one agent (TestAgentProcess):
// TestMultiAgent starts two so that one can be killed with SIGKILL.
const agentConfigEnv = "OTPPROBE_TEST_AGENT_CONFIG"

// TestAgentProcess is not a test: it is an agent process of
// TestMultiAgent, `otpprobe run --config $OTPPROBE_TEST_AGENT_CONFIG`.
func TestAgentProcess(t *testing.T) {
	cfg := os.Getenv(agentConfigEnv)
	if cfg == "" {
		t.Skip("an agent process of TestMultiAgent")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(cmdRun(ctx, []string{"--config", cfg}, os.Stdout, os.Stderr))
}

// agentProc is one running agent process.
type agentProc struct {
	name string
	cmd  *exec.Cmd
	log  string // its JSON log file
	addr string // its API
}

// lines returns the agent's log records with message msg.
func (a *agentProc) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	f, err := os.Open(a.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l map[string]any
		if json.Unmarshal(sc.Bytes(), &l) == nil && l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// route asks the agent's API for the route's decision.
func (a *agentProc) route(t *testing.T) failover.Decision {
	t.Helper()
	var d failover.Decision
	resp, err := http.Get("http://" + a.addr + "/api/v1/routes/otp")
	if err != nil {
		return d
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&d)
	return d
}

// leads reports the agent's otpprobe_route_leader for the route.
func (a *agentProc) leads(t *testing.T) bool {
	t.Helper()
	resp, err := http.Get("http://" + a.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^otpprobe_route_leader\{[^}]*route="otp"[^}]*\} ([01])$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s: no otpprobe_route_leader for otp on /metrics", a.name)
	}
	return string(m[1]) == "1"
}

// firing reports whether the agent's API lists alert name firing.
func (a *agentProc) firing(t *testing.T, name string) bool {
	t.Helper()
	resp, err := http.Get("http://" + a.addr + "/api/v1/alerts")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var as []alert.Alert
	json.NewDecoder(resp.Body).Decode(&as)
	return slices.ContainsFunc(as, func(x alert.Alert) bool { return x.Name == name })
}

// TestMultiAgent: two agents (processes) on one PostgreSQL store probe one
// lab every 3s, each through its own network path to the senders. Only
// eu's path to m365 broken: outvoted, the route stays on m365. Both
// broken: the leader fails the route over, once, and both agents serve
// it. The leader killed with SIGKILL: the other agent takes the decisions
// over (and takes the route to recovering when m365 is back). The test
// logs the timeline.
func TestMultiAgent(t *testing.T) {
	ctx := context.Background()
	_, _, dsn := postgresSchema(t, "otpprobe_agents")

	w, err := lab.Start(ctx, lab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	dir := t.TempDir()
	start := func(name string) *agentProc {
		eps, err := w.AgentEndpoints(name)
		if err != nil {
			t.Fatal(err)
		}
		cfgPath, err := eps.WriteConfig(lab.ConfigOptions{Dir: filepath.Join(dir, name), Schedule: "@every 3s", Listen: "127.0.0.1:0", Agent: name})
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		cfg := regexp.MustCompile(`(?m)^store:\n  path: .*\n`).ReplaceAllLiteral(data, []byte("store:\n  driver: postgres\n  dsn: ${OTPPROBE_TEST_PG_DSN}\n"))
		if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
			t.Fatal(err)
		}
		a := &agentProc{name: name, log: filepath.Join(dir, name+".log")}
		logf, err := os.Create(a.log)
		if err != nil {
			t.Fatal(err)
		}
		defer logf.Close()
		a.cmd = exec.Command(os.Args[0], "-test.run=^TestAgentProcess$")
		a.cmd.Env = append(os.Environ(), agentConfigEnv+"="+cfgPath, "OTPPROBE_TEST_PG_DSN="+dsn)
		a.cmd.Stdout, a.cmd.Stderr = logf, logf
		if err := a.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			a.cmd.Process.Signal(syscall.SIGTERM)
			a.cmd.Wait()
			if t.Failed() {
				b, _ := os.ReadFile(a.log)
				t.Logf("%s's log (last 6 kB):\n%s", name, b[max(0, len(b)-6000):])
			}
		})
		waitFor(t, 2*time.Minute, name+" running", func() bool {
			for _, l := range a.lines(t, "otpprobe running") {
				a.addr, _ = l["http"].(string)
			}
			return a.addr != ""
		})
		return a
	}
	// leadingSince is when a took the route over last after since (zero:
	// not since then).
	leadingSince := func(a *agentProc, since time.Time) time.Time {
		for _, l := range a.lines(t, "deciding the route (leader)") {
			if at, _ := time.Parse(time.RFC3339Nano, l["time"].(string)); at.After(since) {
				return at
			}
		}
		return time.Time{}
	}
	st, err := store.OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Now().UTC()
	// Reads retry for a while: under make test another package's test
	// restarts the shared PostgreSQL.
	retry := func(read func() error) {
		deadline := time.Now().Add(time.Minute)
		for err := read(); err != nil; err = read() {
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	intervals := func() (ivs []store.RouteInterval) {
		retry(func() (err error) { ivs, err = st.RouteIntervals(ctx, "otp", t0.Add(-time.Minute)); return err })
		return ivs
	}
	transitions := func() (trs []store.RouteTransition) {
		retry(func() (err error) { trs, err = st.Transitions(ctx, "otp", time.Time{}, 0); return err })
		return trs
	}
	var timeline []string
	var tlMu sync.Mutex
	note := func(format string, args ...any) {
		tlMu.Lock()
		defer tlMu.Unlock()
		timeline = append(timeline, fmt.Sprintf("%s +%5.1fs ", time.Now().UTC().Format("15:04:05.000"), time.Since(t0).Seconds())+fmt.Sprintf(format, args...))
	}
	defer func() {
		for _, iv := range intervals() {
			note("interval %s %-6s agents=%v bad=%v quorum=%d → bad=%v (counted by %s; rounds %v)",
				iv.Start.Format("15:04:05"), iv.Sender, iv.Agents, iv.BadAgents, iv.Quorum, iv.Bad, iv.Leader, iv.Rounds)
		}
		for _, tr := range transitions() {
			note("transition %s %s→%s (%s→%s) by %s: %s", tr.At.Format("15:04:05.000"), tr.FromState, tr.ToState,
				tr.FromSender, tr.ToSender, tr.Agent, tr.Reason)
		}
		t.Logf("timeline:\n%s", strings.Join(timeline, "\n"))
	}()

	// eu starts first and leads; us joins. (Leadership may move on its
	// own: another package's test restarts the shared PostgreSQL under
	// make test, which ends every session. The test follows the leader.)
	eu := start("eu")
	waitFor(t, 2*time.Minute, "eu to lead", func() bool { return !leadingSince(eu, t0).IsZero() })
	note("eu leads since %s", leadingSince(eu, t0).Format("15:04:05.000"))
	us := start("us")
	note("us running")
	both := func(iv store.RouteInterval) bool { return len(iv.Agents) == 2 }
	waitFor(t, 2*time.Minute, "an interval counted from both agents' rounds", func() bool {
		return slices.ContainsFunc(intervals(), both)
	})

	// Only eu's path to m365 breaks: more bad rounds of eu than the route
	// needs (unhealthy_rounds: 3), outvoted by us every time.
	if err := w.SetPathDown("eu", lab.SenderM365, true); err != nil {
		t.Fatal(err)
	}
	tEU := time.Now()
	note("eu's path to m365 broken")
	outvoted := func() int {
		n := 0
		for _, iv := range intervals() {
			if iv.Sender == "m365" && iv.Start.After(tEU) && both(iv) && slices.Equal(iv.BadAgents, []string{"eu"}) && !iv.Bad {
				n++
			}
		}
		return n
	}
	waitFor(t, 3*time.Minute, "5 m365 intervals where only eu saw it down", func() bool { return outvoted() >= 5 })
	note("%d m365 intervals counted with only eu bad: not a quorum", outvoted())
	if trs := transitions(); len(trs) != 0 {
		t.Fatalf("one agent's broken path moved the route: %+v", trs)
	}
	if d := us.route(t); d.ActiveSender != "m365" || d.State != failover.StatePrimary {
		t.Fatalf("us serves %+v", d)
	}

	// Both paths break: the route fails over once.
	if err := w.SetPathDown("us", lab.SenderM365, true); err != nil {
		t.Fatal(err)
	}
	tBoth := time.Now()
	note("us's path to m365 broken too")
	toBackup := func() []store.RouteTransition {
		var out []store.RouteTransition
		for _, tr := range transitions() {
			if tr.ToState == failover.StateBackup {
				out = append(out, tr)
			}
		}
		return out
	}
	waitFor(t, 3*time.Minute, "the failover to backup", func() bool { return len(toBackup()) > 0 })
	fo := toBackup()[0]
	note("failed over to %s %.1fs after both paths broke (taken by %s)", fo.ToSender, fo.At.Sub(tBoth).Seconds(), fo.Agent)
	t.Logf("failover time with two agents at @every 3s: %.1fs (both paths broken → transition to backup)", fo.At.Sub(tBoth).Seconds())
	if fo.ToSender != "backup" || (fo.Agent != "eu" && fo.Agent != "us") {
		t.Errorf("failover %+v; want to backup, taken by an agent", fo)
	}
	waitFor(t, time.Minute, "both agents to serve backup", func() bool {
		return eu.route(t).ActiveSender == "backup" && us.route(t).ActiveSender == "backup"
	})
	note("both agents serve backup")
	// Each agent's route alert follows the shared decision (the one that
	// did not take it reads it back).
	waitFor(t, time.Minute, "the route alert firing on both agents", func() bool {
		return eu.firing(t, alert.RouteFailedOver) && us.firing(t, alert.RouteFailedOver)
	})
	// otpprobe_route_leader says who decides: 1 on one agent, 0 on the other.
	leads := map[string]bool{"eu": eu.leads(t), "us": us.leads(t)}
	if leads["eu"] == leads["us"] {
		t.Errorf("otpprobe_route_leader: %v; want exactly one agent at 1", leads)
	}

	// The leader (the agent that counted the last interval) dies. The
	// other takes the decisions over; m365 recovers and the survivor
	// takes the route to recovering.
	ivs := intervals()
	dead, survivor := eu, us
	if ivs[len(ivs)-1].Leader == "us" {
		dead, survivor = us, eu
	}
	if err := dead.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	dead.cmd.Wait()
	tKill := time.Now()
	note("%s (the leader) killed (SIGKILL)", dead.name)
	waitFor(t, time.Minute, survivor.name+" to take the route decisions over", func() bool {
		return !leadingSince(survivor, tKill).IsZero()
	})
	took := leadingSince(survivor, tKill).Sub(tKill)
	if !survivor.leads(t) {
		t.Errorf("%s decides but its otpprobe_route_leader is 0", survivor.name)
	}
	note("%s leads since %s: %.1fs after the kill", survivor.name, leadingSince(survivor, tKill).Format("15:04:05.000"), took.Seconds())
	t.Logf("takeover after SIGKILL of the leader: %.1fs (probe interval 3s)", took.Seconds())
	if err := w.SetPathDown(survivor.name, lab.SenderM365, false); err != nil {
		t.Fatal(err)
	}
	note("%s's path to m365 restored", survivor.name)
	waitFor(t, 3*time.Minute, survivor.name+" to take the route to recovering", func() bool {
		trs := transitions()
		return trs[len(trs)-1].ToState == failover.StateRecovering || trs[len(trs)-1].ToState == failover.StatePrimary
	})
	for _, tr := range transitions() {
		if tr.At.After(tKill) && tr.Agent != survivor.name {
			t.Errorf("transition after eu died taken by %q: %+v", tr.Agent, tr)
		}
	}
	if n := len(toBackup()); n != 1 {
		t.Errorf("%d transitions to backup; want exactly one", n)
	}
	if d := survivor.route(t); d.State != failover.StateRecovering && d.State != failover.StatePrimary {
		t.Errorf("%s serves %+v after m365 recovered", survivor.name, d)
	}
	// The intervals after the kill are the survivor's alone.
	for _, iv := range intervals() {
		if iv.DecidedAt.After(tKill.Add(time.Second)) && iv.Leader != survivor.name {
			t.Errorf("interval counted after the kill by %s: %+v", iv.Leader, iv)
		}
	}
}
