package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway/modules/jobs"
	"github.com/graftlb/graftlb/protocol"
	"github.com/graftlb/graftlb/transport"
)

// natsRequestReplyUs is the anchor the transport scenario's notes quote: a
// NATS request/reply round trip on one machine in NATS's own benchmarks.
const natsRequestReplyUs = 116

// DefaultDurableCalls is Scenario.DurableCalls' default.
const DefaultDurableCalls = 300

// durableWorkMs is how long each durable job of the kill run works.
const durableWorkMs = 100

// DurableReport is the transport scenario's durable run: Calls submitted
// (Idempotent of them flagged IDEMPOTENT) while no gateway ran, then
// executed by Gateways gateways of which Killed was SIGKILLed while it
// worked. Counts are by job id, from the gateways' execution records.
type DurableReport struct {
	Calls      int    `json:"calls"`
	Idempotent int    `json:"idempotent"`
	Accepted   int    `json:"accepted"`
	Gateways   int    `json:"gateways"`
	Killed     string `json:"killed"`
	// StartedOnKilled counts the jobs the killed gateway had started.
	StartedOnKilled int `json:"started_on_killed"`
	// Executed counts the jobs that started at least once; Finished those
	// that ran to their end at least once.
	Executed int `json:"executed"`
	Finished int `json:"finished"`
	// Redelivered counts the jobs that started twice (IDEMPOTENT ones that
	// the killed gateway had been running).
	Redelivered int `json:"redelivered"`
	// CutShort counts the other jobs the kill interrupted: they ran at most
	// once, as promised, so they did not finish.
	CutShort int `json:"cut_short"`
	// MaxStartsIdempotent and MaxStartsOther are the most starts of one job.
	MaxStartsIdempotent int     `json:"max_starts_idempotent"`
	MaxStartsOther      int     `json:"max_starts_other"`
	DrainMs             float64 `json:"drain_ms"` // from the gateways' start until every job was settled
}

// transportScenario runs the same stateless load directly through the
// proxy's pool and over NATS (queue, then durable), against the same
// gateways and a NATS server of its own (`graftlb nats`), one fresh proxy
// per run; then the durable kill run (DurableReport).
func transportScenario(ctx context.Context, sc Scenario, rep *ScenarioReport) error {
	dir, err := os.MkdirTemp("", "graftlb-bench-transport-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cl, err := newCluster(sc.Binary, DiscoveryStatic)
	if err != nil {
		return err
	}
	defer cl.close()
	nats, err := StartGraftlb(ctx, sc.Binary, "nats", "nats", "--nats-store", filepath.Join(dir, "nats"), "--log-level", "warn")
	if err != nil {
		return err
	}
	cl.procs = append(cl.procs, nats)
	url := nats.Addr.NATS
	if err := cl.startGateways(ctx, sc.Gateways, "--modules", "orders,jobs", "--nats", url, "--nats-modules", "orders@1"); err != nil {
		return err
	}
	load := sc.Load
	if load.Workload == "" {
		load.Workload = Stateless
	}
	byLabel := map[string]*Report{}
	for _, run := range []struct{ label, route string }{
		{"direct", ""}, {"nats-queue", "orders@1=nats:queue"}, {"nats-durable", "orders@1=nats:durable"},
	} {
		extra := []string{}
		if run.route != "" {
			extra = append(extra, "--nats", url, "--route", run.route)
		}
		proxy, err := cl.startProxy(ctx, cl.gateways, extra...)
		if err != nil {
			return err
		}
		l := load
		l.Label, l.Target = run.label, "tcp://"+proxy.Addr.TCP
		l.Durable = run.label == "nats-durable"
		u0, uerr := nats.Usage()
		r, err := runLoad(ctx, sc, l, proxy, nil)
		cl.stop(proxy)
		if err != nil {
			return fmt.Errorf("bench: transport: %s run: %w", run.label, err)
		}
		if u1, err := nats.Usage(); uerr == nil && err == nil && r.CallsOK+r.CallsFailed > 0 {
			v := float64((u1.CPU - u0.CPU).Microseconds()) / float64(r.CallsOK+r.CallsFailed)
			r.NATSCPUUsPerCall = &v
		}
		r.Proxy, r.Gateways = "graftlb", sc.Gateways
		rep.Runs = append(rep.Runs, r)
		byLabel[run.label] = r
		if ctx.Err() != nil {
			return nil
		}
	}
	d, q := byLabel["direct"], byLabel["nats-queue"]
	rep.Notes = append(rep.Notes,
		fmt.Sprintf("the NATS hop (nats-queue over direct) adds %d µs at p50 and %d µs at p99; anchor: a NATS request/reply round trip is about %d µs on one machine in NATS's own benchmarks",
			q.LatencyUs.P50-d.LatencyUs.P50, q.LatencyUs.P99-d.LatencyUs.P99, natsRequestReplyUs),
		"nats-durable answers when the call is stored (JetStream's ack), not when it ran: its latency is the store's; the gateways run the calls behind it",
		fmt.Sprintf("NATS server CPU per call: queue %s µs, durable %s µs (the proxy's is in the table)",
			fmtPtr(q.NATSCPUUsPerCall), fmtPtr(byLabel["nats-durable"].NATSCPUUsPerCall)))
	// The durable kill run needs the pool stopped: calls are submitted
	// with no gateway up.
	killAll(cl.gateways)
	for _, g := range cl.gateways {
		cl.forget(g)
	}
	cl.gateways = nil
	dr, err := durableKill(ctx, sc, cl, url, filepath.Join(dir, "jobs.log"), rep)
	if dr != nil {
		rep.Durable = dr
		rep.Notes = append(rep.Notes, fmt.Sprintf("durable: %d calls (%d IDEMPOTENT) accepted with every gateway stopped; %d gateways started, %s SIGKILLed after it started %d; "+
			"executed %d, finished %d, redelivered %d, cut short %d (not IDEMPOTENT: at most once); most starts of one call: IDEMPOTENT %d, other %d",
			dr.Calls, dr.Idempotent, dr.Gateways, dr.Killed, dr.StartedOnKilled, dr.Executed, dr.Finished, dr.Redelivered, dr.CutShort,
			dr.MaxStartsIdempotent, dr.MaxStartsOther))
	}
	return err
}

func fmtPtr(v *float64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(*v, 'f', 1, 64)
}

// forget drops p from the processes close kills (it exited).
func (c *cluster) forget(p *Proc) {
	for i, q := range c.procs {
		if q == p {
			c.procs = append(c.procs[:i], c.procs[i+1:]...)
			return
		}
	}
}

// durableKill submits the durable calls through a proxy with no gateway,
// starts the gateways, SIGKILLs the second once it started some, and
// counts the executions the gateways recorded in logPath.
func durableKill(ctx context.Context, sc Scenario, cl *cluster, url, logPath string, rep *ScenarioReport) (*DurableReport, error) {
	n := sc.DurableCalls
	if n <= 0 {
		n = DefaultDurableCalls
	}
	fmt.Fprintf(sc.Log, "%s: run durable: %d calls with every gateway stopped, then %d gateways, one SIGKILLed\n", sc.Name, n, sc.Gateways)
	proxy, err := cl.startProxy(ctx, nil, "--nats", url, "--route", "jobs@1=nats:durable")
	if err != nil {
		return nil, err
	}
	defer cl.stop(proxy)
	c, err := client.Dial(ctx, "tcp://"+proxy.Addr.TCP, client.Options{})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	dr := &DurableReport{Calls: n, Gateways: sc.Gateways, Killed: "gw2"}
	idempotent := func(i int) bool { return i%2 == 0 }
	run := protocol.Target{Module: jobs.Name + "@" + jobs.Version, Type: "Jobs", Method: "Run"}
	for i := range n {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		res, err := c.Session().Do(cctx, client.Request{Target: run, Args: []any{"d-" + strconv.Itoa(i), durableWorkMs},
			Stateless: true, Idempotent: idempotent(i)})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("bench: transport: durable submit %d: %w", i, err)
		}
		var a transport.Accepted
		if res.Decode(&a) == nil && a.Accepted {
			dr.Accepted++
		}
		if idempotent(i) {
			dr.Idempotent++
		}
	}
	start := time.Now()
	if err := cl.startGateways(ctx, sc.Gateways, "--modules", "jobs", "--nats", url, "--nats-subscribe", "durable",
		"--jobs-log", logPath, "--durable-workers", "4", "--durable-ack-wait", "2s"); err != nil {
		return nil, err
	}
	victim := cl.gateway(dr.Killed)
	settled := func(recs []jobs.Record) bool {
		starts, dones := countRecords(recs)
		for i := range n {
			id := "d-" + strconv.Itoa(i)
			if starts[id][""] == 0 || idempotent(i) && dones[id] == 0 {
				return false
			}
		}
		return true
	}
	killed := false
	deadline := time.Now().Add(120 * time.Second)
	var recs []jobs.Record
	for {
		if recs, err = readRecords(logPath); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		if !killed {
			if starts, _ := countRecords(recs); countOn(starts, dr.Killed) >= 4 {
				_ = victim.Signal(syscall.SIGKILL)
				<-victim.Done()
				cl.forget(victim)
				rep.Events = append(rep.Events, Event{TMs: time.Since(start).Milliseconds(), Kind: EventKill, Gateway: dr.Killed})
				killed = true
			}
		}
		if killed && settled(recs) {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			rep.Violations = append(rep.Violations, "durable: not every call was settled within 120s")
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	dr.DrainMs = float64(time.Since(start).Microseconds()) / 1000
	starts, dones := countRecords(recs)
	dr.StartedOnKilled = countOn(starts, dr.Killed)
	for i := range n {
		id := "d-" + strconv.Itoa(i)
		k := starts[id][""]
		if k > 0 {
			dr.Executed++
		} else {
			rep.Violations = append(rep.Violations, "durable: call "+id+" never ran (lost)")
		}
		if dones[id] > 0 {
			dr.Finished++
		}
		if k > 1 {
			dr.Redelivered++
		}
		if idempotent(i) {
			dr.MaxStartsIdempotent = max(dr.MaxStartsIdempotent, k)
			if k > 2 {
				rep.Violations = append(rep.Violations, fmt.Sprintf("durable: IDEMPOTENT call %s ran %d times", id, k))
			}
		} else {
			dr.MaxStartsOther = max(dr.MaxStartsOther, k)
			if k > 1 {
				rep.Violations = append(rep.Violations, fmt.Sprintf("durable: call %s ran %d times; it is not IDEMPOTENT", id, k))
			}
			if k == 1 && dones[id] == 0 {
				dr.CutShort++
			}
		}
	}
	if dr.Accepted != n {
		rep.Violations = append(rep.Violations, fmt.Sprintf("durable: %d of %d calls accepted", dr.Accepted, n))
	}
	return dr, nil
}

// readRecords reads the jobs log: one JSON Record per line (a torn last
// line, being written, is skipped).
func readRecords(path string) ([]jobs.Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []jobs.Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r jobs.Record
		if json.Unmarshal(sc.Bytes(), &r) == nil {
			out = append(out, r)
		}
	}
	return out, sc.Err()
}

// countRecords counts starts by job id and gateway (and under "" in all)
// and finishes by job id.
func countRecords(recs []jobs.Record) (starts map[string]map[string]int, dones map[string]int) {
	starts, dones = map[string]map[string]int{}, map[string]int{}
	for _, r := range recs {
		switch r.Event {
		case "start":
			if starts[r.ID] == nil {
				starts[r.ID] = map[string]int{}
			}
			starts[r.ID][r.Gateway]++
			starts[r.ID][""]++
		case "done":
			dones[r.ID]++
		}
	}
	return starts, dones
}

// countOn counts the jobs that started on gateway gw.
func countOn(starts map[string]map[string]int, gw string) int {
	n := 0
	for _, by := range starts {
		if by[gw] > 0 {
			n++
		}
	}
	return n
}
