package bench

import (
	"context"
	"fmt"
	"syscall"
	"time"
)

// failover runs the mixed workload through graftlb in front of a pool
// (Scenario.Gateways, static list or gossip) and, at Scenario.At, kills
// (kind kill: SIGKILL) or drains (kind term: SIGTERM) one gateway, then
// keeps the load going to the end.
//
// A kill must fail exactly the sessions that gateway owned (SESSION_LOST,
// lost ≤ sessions_on_target) and misroute none; idempotent stateless calls
// are retried elsewhere by the proxy. A drain must fail nothing and lose
// nothing: the drained gateway refuses new sessions (the proxy places them
// elsewhere), serves its sessions to their end, and exits once idle (a
// stop event).
func failover(ctx context.Context, sc Scenario, rep *ScenarioReport, kind string) error {
	cl, err := newCluster(sc.Binary, sc.Discovery)
	if err != nil {
		return err
	}
	defer cl.close()
	if err := cl.startGateways(ctx, sc.Gateways); err != nil {
		return err
	}
	victim := cl.gateway(sc.Target)
	if victim == nil {
		return fmt.Errorf("bench: scenario %s: no gateway %q in a pool of %d", sc.Name, sc.Target, sc.Gateways)
	}
	proxy, err := cl.startProxy(ctx, cl.gateways)
	if err != nil {
		return err
	}
	load := sc.Load
	if load.Workload == "" {
		load.Workload = Mixed
	}
	load.Target = "tcp://" + proxy.Addr.TCP
	load.Label = "graftlb"
	sig := syscall.SIGKILL
	if kind == EventTerm {
		sig = syscall.SIGTERM
	}
	var sigErr error
	r, err := runLoad(ctx, sc, load, proxy, func(r *Run) {
		t := time.NewTimer(sc.At)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Done():
			return
		}
		r.Mark(kind, victim.Name)
		if sigErr = victim.Signal(sig); sigErr != nil || kind != EventTerm {
			return
		}
		select {
		case <-victim.Done():
			r.Mark(EventStop, victim.Name)
		case <-r.Done():
		}
	})
	if err != nil {
		return err
	}
	if sigErr != nil {
		return sigErr
	}
	r.Gateways = sc.Gateways
	rep.Runs = append(rep.Runs, r)
	rep.Events = append(rep.Events, r.events...)
	if len(r.events) == 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the run ended before %v: %s was not signalled", sc.At, victim.Name))
		return nil
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("%s pool of %d gateways; %s %s at %v", sc.Discovery, sc.Gateways,
		map[string]string{EventKill: "SIGKILL", EventTerm: "SIGTERM"}[kind], victim.Name, sc.At))
	if kind == EventTerm && !victim.Exited() {
		rep.Notes = append(rep.Notes, victim.Name+" was still draining at the end of the run")
	}
	rep.Violations = append(rep.Violations, failoverViolations(r, kind)...)
	return nil
}

// failoverViolations checks the scenario's own invariants (Report.Check
// covers the general ones).
func failoverViolations(r *Report, kind string) []string {
	var v []string
	var lostN, onTarget int64
	if r.Sessions != nil {
		lostN = r.Sessions.Lost
	}
	if r.SessionsOnTarget != nil {
		onTarget = *r.SessionsOnTarget
	}
	switch kind {
	case EventTerm:
		if r.CallsFailed != 0 {
			v = append(v, fmt.Sprintf("drain: %d calls failed (%v), want 0", r.CallsFailed, r.Errors))
		}
		if lostN != 0 {
			v = append(v, fmt.Sprintf("drain: %d sessions lost, want 0", lostN))
		}
	case EventKill:
		if lostN > onTarget {
			v = append(v, fmt.Sprintf("failover: %d sessions lost, more than the %d on the killed gateway", lostN, onTarget))
		}
	}
	return v
}
