package bench

import (
	"context"
	"fmt"
)

// scaleout runs the sleep workload through graftlb in front of 1, 2, 4
// and 8 gateways (Scenario.Pools). Each gateway gets the same number of
// users, Load.Concurrency / max(Pools), each calling Chaos.Sleep for 5–20
// ms: the time is spent waiting on the gateways, not on the machine's
// cores, so with perfect balancing and no proxy overhead throughput grows
// linearly with the pool. Each run's ideal_ratio is its throughput over
// that line, drawn through the smallest pool's throughput; what falls short
// of it is the proxy's and the machine's overhead, and any imbalance.
//
// The load grows with the pool rather than staying fixed because the
// embedded gateway runs each call on a goroutine of its own, without a cap
// or a queue: one gateway would absorb any number of sleeping calls, and a
// fixed load would not scale with the pool at all. (A gateway with a
// bounded worker pool would make this a test of pool capacity.)
func scaleout(ctx context.Context, sc Scenario, rep *ScenarioReport) error {
	cl, err := newCluster(sc.Binary, sc.Discovery)
	if err != nil {
		return err
	}
	defer cl.close()
	maxN := sc.Pools[len(sc.Pools)-1]
	perGateway := max(1, orDefaultInt(sc.Load.Concurrency, DefaultConcurrency)/maxN)
	load := sc.Load
	if load.Workload == "" {
		load.Workload = Sleep
	}
	load = load.withDefaults()
	rep.Notes = append(rep.Notes, fmt.Sprintf(
		"%s pools; %d users per gateway, %s workload (Chaos.Sleep %v–%v); ideal_ratio is throughput over the line through %d gateway(s) × pool size",
		sc.Discovery, perGateway, load.Workload, load.SleepMin, load.SleepMax, sc.Pools[0]))
	for _, n := range sc.Pools {
		if ctx.Err() != nil {
			return nil
		}
		// The pool grows between runs, so that a gossip pool holds
		// exactly the gateways of the run.
		if err := cl.startGateways(ctx, n); err != nil {
			return err
		}
		proxy, err := cl.startProxy(ctx, cl.gateways[:n])
		if err != nil {
			return err
		}
		l := load
		l.Target = "tcp://" + proxy.Addr.TCP
		l.Label = fmt.Sprintf("gateways=%d", n)
		l.Concurrency = perGateway * n
		r, err := runLoad(ctx, sc, l, proxy, nil)
		cl.stop(proxy)
		if err != nil {
			return err
		}
		r.Gateways = n
		rep.Runs = append(rep.Runs, r)
	}
	base := rep.Runs[0].ThroughputPerS / float64(rep.Runs[0].Gateways)
	for _, r := range rep.Runs {
		if base > 0 {
			v := r.ThroughputPerS / (base * float64(r.Gateways))
			r.IdealRatio = &v
		}
	}
	return nil
}
