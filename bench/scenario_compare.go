package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
)

// openLoopShare is the offered rate of compare's open-loop runs, as a share
// of the slowest proxy's closed-loop calls/s on the same transport.
const openLoopShare = 0.5

// graftlbCompareFlags keep the graftlb proxy's breakers, ejection and
// concurrency caps from ever tripping in compare: the peers run without
// any, and a comparison measures forwarding, not protection.
var graftlbCompareFlags = []string{"--breaker-failure-rate", "1", "--eject-consecutive", "-1",
	"--breaker-max-concurrent", "1000000"}

// peer is a proxy compare runs the load through.
type peer struct {
	name string // graftlb, haproxy, nginx
	// start starts a fresh proxy for one run over transport (tcp or ws) and
	// returns it with the target the users dial.
	start func(ctx context.Context, transport string) (*Proc, string, error)
}

// compare runs the same load (stateless unless set) against the same
// gateways: direct to gw1, then through each proxy in a closed loop over
// TCP (graftlb; HAProxy in TCP mode; nginx's stream module) and over
// WebSocket (graftlb; HAProxy in HTTP mode; nginx as an HTTP proxy that
// passes the upgrade on), then through each again in an open loop at the
// same offered rate per transport: Load.Rate if set, else openLoopShare of
// the slowest proxy's closed-loop rate on that transport. Each run has a
// fresh proxy process, so that its memory is its own.
//
// graftlb spreads the calls of each connection over every gateway; the
// peers balance connections, so each of the Load.Conns connections stays
// on one gateway (with 8 connections over 3 gateways, 3/3/2). A peer
// missing from the machine is said in the notes, and only its runs are
// skipped. The package doc says how the runs are kept fair.
func compare(ctx context.Context, sc Scenario, rep *ScenarioReport) error {
	cl, err := newCluster(sc.Binary, DiscoveryStatic)
	if err != nil {
		return err
	}
	defer cl.close()
	defer func() { // before cl.close, which SIGKILLs: nginx's workers would outlive it
		for _, p := range slices.Clone(cl.procs) {
			stopPeer(cl, p)
		}
	}()
	dir, err := os.MkdirTemp("", "graftlb-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := cl.startGateways(ctx, sc.Gateways); err != nil {
		return err
	}
	peers := comparePeers(sc, cl, dir, rep)
	defer func() { rep.Ratios = compareRatios(rep.Runs) }() // of the runs done, if interrupted
	rep.Notes = append(rep.Notes, fmt.Sprintf("fairness: the same %d gateways behind every proxy, one fresh proxy process per run, none pinned to a core: "+
		"graftlb GOMAXPROCS %d (Go's default), HAProxy nbthread %d, nginx worker_processes %d (reuseport); "+
		"no breaker or health check in any; other engineers' processes may share the cores",
		sc.Gateways, peerThreads(), peerThreads(), peerThreads()))

	load := sc.Load
	if load.Workload == "" {
		load.Workload = Stateless
	}
	load.Rate = 0
	run := func(label, proxyName string, target string, proxy *Proc, l Config) (*Report, error) {
		l.Label, l.Target = label, target
		r, err := runLoad(ctx, sc, l, proxy, nil)
		if err != nil {
			return nil, fmt.Errorf("bench: compare: %s run: %w", label, err)
		}
		r.Proxy = proxyName
		if proxy != nil {
			r.Gateways = sc.Gateways
		} else {
			r.Gateways = 1
		}
		rep.Runs = append(rep.Runs, r)
		return r, nil
	}
	through := func(p peer, transport, label string, l Config) (*Report, error) {
		proc, target, err := p.start(ctx, transport)
		if err != nil {
			return nil, fmt.Errorf("bench: compare: starting %s (%s): %w", p.name, transport, err)
		}
		defer stopPeer(cl, proc)
		return run(label, p.name, target, proc, l)
	}

	if _, err := run("direct", "", "tcp://"+cl.gateways[0].Addr.TCP, nil, load); err != nil || ctx.Err() != nil {
		return err
	}
	slowest := map[string]float64{}
	for _, tr := range []string{transportTCP, transportWS} {
		for _, p := range peers {
			r, err := through(p, tr, runLabel(p.name, tr, false), load)
			if err != nil || ctx.Err() != nil {
				return err
			}
			if s, ok := slowest[tr]; !ok || r.ThroughputPerS < s {
				slowest[tr] = r.ThroughputPerS
			}
		}
	}
	for _, tr := range []string{transportTCP, transportWS} {
		open := load
		open.Rate = sc.Load.Rate
		if open.Rate <= 0 {
			open.Rate = math.Round(openLoopShare * slowest[tr])
		}
		if open.Rate <= 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("no open-loop %s runs: no proxy carried a call in the closed loop", tr))
			continue
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("open loop over %s: %.0f calls/s offered through each proxy", tr, open.Rate))
		for _, p := range peers {
			if _, err := through(p, tr, runLabel(p.name, tr, true), open); err != nil || ctx.Err() != nil {
				return err
			}
		}
	}
	return nil
}

// runLabel names a compare run: graftlb, haproxy-ws, nginx-open,
// graftlb-ws-open.
func runLabel(proxy, transport string, open bool) string {
	l := proxy
	if transport == transportWS {
		l += "-ws"
	}
	if open {
		l += "-open"
	}
	return l
}

// comparePeers returns graftlb and the peers found on the machine; a
// missing one is noted (rep) and left out.
func comparePeers(sc Scenario, cl *cluster, dir string, rep *ScenarioReport) []peer {
	peers := []peer{{name: "graftlb", start: func(ctx context.Context, transport string) (*Proc, string, error) {
		args := graftlbCompareFlags
		if transport == transportWS {
			args = append(slices.Clone(args), "--ws", "127.0.0.1:0")
		}
		p, err := cl.startProxy(ctx, cl.gateways, args...)
		if err != nil {
			return nil, "", err
		}
		if transport == transportWS {
			return p, "ws://" + p.Addr.WS + "/ws", nil
		}
		return p, "tcp://" + p.Addr.TCP, nil
	}}}
	type found struct {
		name, path, pkg string
		find            func(string) (string, error)
		start           func(context.Context, string, string, []*Proc, string) (*Proc, error)
		how             string
	}
	for _, f := range []found{
		{"haproxy", sc.HAProxy, "haproxy", FindHAProxy, startHAProxy, "TCP mode, and HTTP mode for WebSocket; balance leastconn"},
		{"nginx", sc.Nginx, "nginx libnginx-mod-stream", FindNginx, startNginx,
			"stream module for TCP, HTTP proxy with Upgrade for WebSocket; least_conn, max_fails=0"},
	} {
		bin, err := f.find(f.path)
		if err != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s missing: %v; its runs are skipped (apt-get install %s)", f.name, err, f.pkg))
			fmt.Fprintf(sc.Log, "compare: %s MISSING (%v): skipping its runs\n", f.name, err)
			continue
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s (%s): %s over %d gateways", f.name, bin, f.how, sc.Gateways))
		peers = append(peers, peer{name: f.name, start: func(ctx context.Context, transport string) (*Proc, string, error) {
			p, err := f.start(ctx, bin, dir, cl.gateways, transport)
			if err != nil {
				return nil, "", err
			}
			cl.procs = append(cl.procs, p)
			if transport == transportWS {
				return p, "ws://" + p.Addr.TCP + "/ws", nil
			}
			return p, "tcp://" + p.Addr.TCP, nil
		}})
	}
	return peers
}

// compareRatios sets each graftlb run against every peer run of the same
// transport and loop.
func compareRatios(runs []*Report) []Ratio {
	var out []Ratio
	for _, g := range runs {
		if g.Proxy != "graftlb" {
			continue
		}
		for _, p := range runs {
			if p.Proxy == "" || p.Proxy == "graftlb" || p.Mode != g.Mode || scheme(p.Target) != scheme(g.Target) {
				continue
			}
			out = append(out, Ratio{Run: g.Label, Peer: p.Label,
				Throughput: ratio(g.ThroughputPerS, p.ThroughputPerS),
				P99:        ratio(float64(g.LatencyUs.P99), float64(p.LatencyUs.P99)),
				CPUPerCall: ratioOpt(g.ProxyCPUUsPerCall, p.ProxyCPUUsPerCall),
				RSS:        ratioOpt(g.ProxyRSSMB, p.ProxyRSSMB),
			})
		}
	}
	return out
}

// stopPeer stops a proxy compare started. nginx gets SIGTERM: its master
// then stops its workers, which a SIGKILL of the master would leave behind.
// The others are killed (a graftlb proxy would drain first).
func stopPeer(cl *cluster, p *Proc) {
	if p.Name == "nginx" {
		p.Stop(peerStopGrace)
	}
	cl.stop(p)
}

// scheme returns the scheme of a run's target: tcp or ws.
func scheme(target string) string {
	s, _, _ := strings.Cut(target, "://")
	return s
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func ratioOpt(a, b *float64) *float64 {
	if a == nil || b == nil || *b == 0 {
		return nil
	}
	v := *a / *b
	return &v
}
