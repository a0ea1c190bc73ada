package bench

import (
	"context"
	"fmt"
	"strconv"
)

// scaleout runs the sleep workload through graftlb in front of 1, 2, 4
// and 8 gateways (Scenario.Pools), with the same load every time:
// Load.Concurrency users in a closed loop, each calling Chaos.Sleep for
// 5–20 ms. Each gateway executes at most Scenario.Workers calls at once
// (gateway --workers) and queues the rest, so its capacity is finite
// (Workers / mean sleep) and the time is spent waiting on gateways, not on
// the machine's cores: with perfect balancing and no proxy overhead,
// throughput grows linearly with the pool until the users are all busy.
// Each run's ideal_ratio is its throughput over the line through the
// smallest pool's throughput × pool size; what falls short of it is the
// proxy's and the machine's overhead, and any imbalance.
func scaleout(ctx context.Context, sc Scenario, rep *ScenarioReport) error {
	cl, err := newCluster(sc.Binary, sc.Discovery)
	if err != nil {
		return err
	}
	defer cl.close()
	load := sc.Load
	if load.Workload == "" {
		load.Workload = Sleep
	}
	load = load.withDefaults()
	rep.Notes = append(rep.Notes, fmt.Sprintf(
		"%s pools; %d users, %s workload (Chaos.Sleep %v–%v); each gateway runs %d calls at once; ideal_ratio is throughput over the line through %d gateway(s) × pool size",
		sc.Discovery, load.Concurrency, load.Workload, load.SleepMin, load.SleepMax, sc.Workers, sc.Pools[0]))
	for _, n := range sc.Pools {
		if ctx.Err() != nil {
			return nil
		}
		// The pool grows between runs, so that a gossip pool holds
		// exactly the gateways of the run.
		if err := cl.startGateways(ctx, n, "--workers", strconv.Itoa(sc.Workers)); err != nil {
			return err
		}
		proxy, err := cl.startProxy(ctx, cl.gateways[:n])
		if err != nil {
			return err
		}
		l := load
		l.Target = "tcp://" + proxy.Addr.TCP
		l.Label = fmt.Sprintf("gateways=%d", n)
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
