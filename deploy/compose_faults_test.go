package deploy

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/graftlb/graftlb/bench"
)

// faultRow is one line of the fault table.
type faultRow struct {
	fault string
	rep   *bench.Report
	owned string // sessions the victim owned ("-": not a gateway)
	pool  string // what every proxy's /pool showed, and when
}

const (
	warmup     = 2 * time.Second // load before the fault
	afterwards = 2 * time.Second // load after the pool settled
	partition  = 20 * time.Second
)

// startLoad runs the mixed workload through target (stateless calls and
// cart sessions, each verified) until stopped.
func startLoad(t *testing.T, target string) *bench.Run {
	t.Helper()
	r, err := bench.Start(context.Background(), bench.Config{Target: target, Workload: bench.Mixed,
		Conns: 4, Concurrency: 16, Duration: 2 * time.Minute, CallTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the warm-up", func() bool { return r.Elapsed() >= warmup })
	return r
}

// finish lets the load run a little longer, then stops it and returns its
// report, checked: every session accounted for, none misrouted.
func finish(t *testing.T, r *bench.Run, fault string) *bench.Report {
	t.Helper()
	time.Sleep(afterwards) // the load after the fault is part of the measurement
	r.Stop()
	rep := r.Wait()
	for _, v := range rep.Check() {
		t.Errorf("%s: %s", fault, v)
	}
	return rep
}

func owned(rep *bench.Report) string {
	if rep.SessionsOnTarget == nil {
		return "?"
	}
	return fmt.Sprint(*rep.SessionsOnTarget)
}

// checkLost fails the test if a gateway fault lost sessions the victim
// did not own.
func checkLost(t *testing.T, fault string, rep *bench.Report) {
	t.Helper()
	if rep.Sessions == nil || rep.SessionsOnTarget == nil {
		t.Fatalf("%s: no session counts in the report", fault)
	}
	if rep.Sessions.Lost > *rep.SessionsOnTarget {
		t.Errorf("%s: %d sessions lost, more than the %d the victim owned", fault, rep.Sessions.Lost, *rep.SessionsOnTarget)
	}
}

// TestComposeFaults brings deploy/compose/compose.yaml up (three gateways,
// two proxies, gossip with the key from gossip.env, on a network with no
// route beyond it), runs the mixed workload through proxy1, and faults it
// four ways, one at a time, restoring the pool in between: docker kill a
// gateway, docker network disconnect one for 20 s, docker stop one (it
// drains within stop_grace_period and exits 0), docker restart proxy1.
// Per fault it logs the calls failed by code, the sessions lost against
// those the victim owned, misrouted sessions (none allowed) and how long
// until every proxy's /pool showed the change.
func TestComposeFaults(t *testing.T) {
	img := testImage(t)
	start := time.Now()
	c := startCompose(t, img)
	c.waitFull("start")
	t.Logf("compose up: every proxy's pool full after %s", fmtDur(time.Since(start)))
	target := "tcp://" + c.ip("proxy1") + ":9990"
	var rows []faultRow

	// 1. docker kill gw1: SIGKILL, sessions on it are lost.
	{
		id := c.container("gw1")
		inst := c.pool("proxy1")["gw1"].Instance
		r := startLoad(t, target)
		r.Mark(bench.EventKill, "gw1")
		mustDocker(t, "kill", id)
		took := waitUntil(t, 30*time.Second, "every proxy to stop routing to the killed gw1", func() bool {
			return c.everyProxy(func(p map[string]poolEntry) bool { return p["gw1"].State != "ready" || p["gw1"].Instance != inst })
		})
		rep := finish(t, r, "kill")
		checkLost(t, "kill", rep)
		rows = append(rows, faultRow{"docker kill gw1", rep, owned(rep), "not ready after " + fmtDur(took)})
		mustDocker(t, "start", id)
		c.waitFull("after the kill")
	}

	// 2. docker network disconnect gw2 for 20 s: both sides declare the
	// other dead; after the reconnect the same process serves again.
	{
		id := c.container("gw2")
		ip := c.ip("gw2")
		r := startLoad(t, target)
		r.Mark(bench.EventKill, "gw2")
		mustDocker(t, "network", "disconnect", c.network(), id)
		cut := time.Now()
		down := waitUntil(t, 30*time.Second, "every proxy to stop routing to the cut-off gw2", func() bool {
			return c.everyProxy(func(p map[string]poolEntry) bool { return p["gw2"].State != "ready" })
		})
		var absent bool
		waitUntil(t, partition, "gossip to declare gw2 dead, or the partition's end", func() bool {
			absent = c.everyProxy(func(p map[string]poolEntry) bool { _, ok := p["gw2"]; return !ok })
			return absent || time.Since(cut) >= partition
		})
		time.Sleep(time.Until(cut.Add(partition))) // the fault lasts 20 s
		mustDocker(t, "network", "connect", "--alias", "gw2", c.network(), id)
		back := waitUntil(t, 40*time.Second, "every proxy to route to gw2 again", func() bool {
			return c.everyProxy(func(p map[string]poolEntry) bool { return p["gw2"].State == "ready" })
		})
		rep := finish(t, r, "partition")
		checkLost(t, "partition", rep)
		note := ""
		if absent {
			note = ", gossip had dropped it"
		}
		if now := c.ip("gw2"); now != ip {
			note += fmt.Sprintf(", its address changed %s -> %s", ip, now)
		}
		rows = append(rows, faultRow{"network disconnect gw2 20 s", rep, owned(rep),
			fmt.Sprintf("not ready after %s%s; ready again %s after the reconnect", fmtDur(down), note, fmtDur(back))})
		if back > 15*time.Second { // rejoin every 3 s, gossip, a loaded machine: a few seconds
			t.Errorf("gw2 served again %v after the partition healed, want within 15 s", back)
		}
		c.waitFull("after the partition")
	}

	// 3. docker stop gw3: SIGTERM, the gateway drains, exits 0 before
	// stop_grace_period.
	{
		id := c.container("gw3")
		r := startLoad(t, target)
		r.Mark(bench.EventTerm, "gw3")
		stopStart := time.Now()
		stopped := make(chan error, 1)
		go func() { _, err := docker("stop", id); stopped <- err }()
		took := waitUntil(t, 30*time.Second, "every proxy to stop placing sessions on the draining gw3", func() bool {
			return c.everyProxy(func(p map[string]poolEntry) bool { return p["gw3"].State != "ready" })
		})
		if err := <-stopped; err != nil {
			t.Fatal(err)
		}
		stopTook := time.Since(stopStart)
		rep := finish(t, r, "stop")
		checkLost(t, "stop", rep)
		if code := mustDocker(t, "inspect", "-f", "{{.State.ExitCode}}", id); code != "0" {
			t.Errorf("docker stop: gw3 exited %s, want 0 (drained within stop_grace_period)", code)
		}
		rows = append(rows, faultRow{"docker stop gw3", rep, owned(rep),
			fmt.Sprintf("draining after %s; exited 0 after %s", fmtDur(took), fmtDur(stopTook))})
		mustDocker(t, "start", id)
		c.waitFull("after the stop")
	}

	// 4. docker restart proxy1, the proxy the load goes through: the
	// client reconnects and resumes its sessions at the restarted proxy.
	{
		id := c.container("proxy1")
		r := startLoad(t, target)
		restart := time.Now()
		mustDocker(t, "restart", id)
		back := waitUntil(t, 30*time.Second, "the restarted proxy1's pool to be full", func() bool {
			p := c.pool("proxy1")
			return p != nil && full(p)
		})
		back += time.Since(restart) - back // from the restart command, not from its return
		rep := finish(t, r, "proxy restart")
		if c.ip("proxy1")+":9990" != strings.TrimPrefix(target, "tcp://") {
			t.Logf("proxy1 came back at another address: %s", c.ip("proxy1"))
		}
		rows = append(rows, faultRow{"docker restart proxy1", rep, "-", "proxy1 full again " + fmtDur(back) + " after the restart began"})
		if back > 15*time.Second {
			t.Errorf("the restarted proxy took %v to see the pool", back)
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "compose faults, mixed workload through proxy1 (4 conns, 16 users; %v of load around each fault):\n", warmup+afterwards)
	b.WriteString("| fault | calls ok | calls failed by code | sessions started | lost | victim owned | misrouted | every proxy's /pool |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		codes := []string{}
		for _, k := range slices.Sorted(maps.Keys(r.rep.Errors)) {
			codes = append(codes, fmt.Sprintf("%s %d", k, r.rep.Errors[k]))
		}
		failed := fmt.Sprint(r.rep.CallsFailed)
		if len(codes) > 0 {
			failed += " (" + strings.Join(codes, ", ") + ")"
		}
		s := r.rep.Sessions
		fmt.Fprintf(&b, "| %s | %d | %s | %d | %d | %s | %d | %s |\n", r.fault, r.rep.CallsOK, failed, s.Started, s.Lost, r.owned, s.Misrouted, r.pool)
	}
	t.Log("\n" + b.String())
}
