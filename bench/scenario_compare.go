package bench

import (
	"context"
	"fmt"
	"os"
)

// compare runs the same load (stateless unless set) three times, one after
// the other against the same gateways: direct to gw1, through graftlb to
// the pool, and through HAProxy in TCP mode to the pool. graftlb spreads
// the calls of each connection over every gateway; HAProxy balances
// connections, so each of the Load.Conns connections stays on one gateway
// (with 8 connections over 3 gateways, 3/3/2). Without HAProxy on PATH the
// scenario says so in its notes and skips only that run.
func compare(ctx context.Context, sc Scenario, rep *ScenarioReport) error {
	cl, err := newCluster(sc.Binary, DiscoveryStatic)
	if err != nil {
		return err
	}
	defer cl.close()
	if err := cl.startGateways(ctx, sc.Gateways); err != nil {
		return err
	}
	load := sc.Load
	if load.Workload == "" {
		load.Workload = Stateless
	}
	run := func(label string, gateways int, target string, proxy *Proc) error {
		if ctx.Err() != nil {
			return nil
		}
		l := load
		l.Label, l.Target = label, target
		r, err := runLoad(ctx, sc, l, proxy, nil)
		if err != nil {
			return fmt.Errorf("bench: compare: %s run: %w", label, err)
		}
		r.Gateways = gateways
		rep.Runs = append(rep.Runs, r)
		return nil
	}

	if err := run("direct", 1, "tcp://"+cl.gateways[0].Addr.TCP, nil); err != nil {
		return err
	}

	proxy, err := cl.startProxy(ctx, cl.gateways)
	if err != nil {
		return err
	}
	err = run("graftlb", sc.Gateways, "tcp://"+proxy.Addr.TCP, proxy)
	cl.stop(proxy)
	if err != nil {
		return err
	}

	bin, err := FindHAProxy(sc.HAProxy)
	if err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("haproxy missing: %v; the haproxy run is skipped (apt-get install haproxy)", err))
		fmt.Fprintf(sc.Log, "compare: HAPROXY MISSING (%v): skipping the haproxy run\n", err)
		return nil
	}
	dir, err := os.MkdirTemp("", "graftlb-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	hp, err := startHAProxy(ctx, bin, dir, cl.gateways)
	if err != nil {
		return err
	}
	cl.procs = append(cl.procs, hp)
	rep.Notes = append(rep.Notes, fmt.Sprintf("haproxy (%s): TCP mode, balance leastconn over %d gateways", bin, sc.Gateways))
	err = run("haproxy", sc.Gateways, "tcp://"+hp.Addr.TCP, hp)
	cl.stop(hp)
	return err
}
