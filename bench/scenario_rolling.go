package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"syscall"
	"time"
)

// DefaultRollingPause is the rolling scenario's pause between the calls of
// a cart session (Config.SessionPause) unless the load sets one: longer
// than a gateway's drain quiet period, so the carts are idle when their
// gateway drains.
const DefaultRollingPause = time.Second

// rollingDrainWait bounds the wait for one drained gateway to exit.
const rollingDrainWait = 40 * time.Second

// rolling runs the mixed workload, with long-lived carts that pause between
// their calls, through graftlb in front of a gossip pool (the gateways
// learn the pool from gossip, which is what lets a drained gateway hand its
// sessions over), and restarts every gateway in turn: SIGTERM (a term
// event), wait for its exit (stop), start a new process under the same
// name, and wait until the proxy has it ready (join). The first restart is
// at Scenario.At; the others follow at even intervals, finishing before
// the end.
//
// It must lose nothing, misroute nothing and fail no call: each drained
// gateway moves its idle sessions to the next gateway of their preference
// lists, and its proxies follow them. The run reports sessions_moved and
// the time each drain took (drains).
func rolling(ctx context.Context, sc Scenario, rep *ScenarioReport) error {
	cl, err := newCluster(sc.Binary, DiscoveryGossip)
	if err != nil {
		return err
	}
	defer cl.close()
	if err := cl.startGateways(ctx, sc.Gateways); err != nil {
		return err
	}
	proxy, err := cl.startProxy(ctx, cl.gateways)
	if err != nil {
		return err
	}
	load := sc.Load
	if load.Workload == "" {
		load.Workload = Mixed
	}
	if load.SessionPause == 0 {
		load.SessionPause = DefaultRollingPause
	}
	load.Target = "tcp://" + proxy.Addr.TCP
	load.Label = "graftlb"
	gap := max(load.Duration*9/10-sc.At, 0) / time.Duration(sc.Gateways)
	var drains []Drain
	var runErr error
	r, err := runLoad(ctx, sc, load, proxy, func(r *Run) {
		for i := range cl.gateways {
			if !sleepUntil(ctx, r, sc.At+time.Duration(i)*gap) {
				return
			}
			d, err := restartOne(ctx, cl, proxy, i, r)
			if err != nil {
				runErr = err
				return
			}
			drains = append(drains, d)
		}
	})
	if err != nil {
		return err
	}
	if runErr != nil {
		return runErr
	}
	r.Gateways = sc.Gateways
	r.Drains = drains
	var moved int64
	for _, d := range drains {
		moved += d.SessionsMoved
	}
	r.SessionsMoved = &moved
	rep.Runs = append(rep.Runs, r)
	rep.Events = append(rep.Events, r.events...)
	rep.Notes = append(rep.Notes, fmt.Sprintf("gossip pool of %d gateways, each SIGTERMed and restarted once from %v, every %v; carts pause %v between calls",
		sc.Gateways, sc.At, gap.Round(time.Millisecond), load.SessionPause))
	if len(drains) < sc.Gateways {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the run ended after %d of %d restarts", len(drains), sc.Gateways))
	}
	rep.Violations = append(rep.Violations, rollingViolations(r)...)
	return nil
}

// sleepUntil waits until the run is at offset t; false when it ended first.
func sleepUntil(ctx context.Context, r *Run, t time.Duration) bool {
	wait := t - r.Elapsed()
	if wait <= 0 {
		return !r.stopped()
	}
	tm := time.NewTimer(wait)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-r.stop:
	case <-ctx.Done():
	}
	return false
}

// restartOne drains gateway i (SIGTERM), waits for it to exit, reading its
// handoff counters meanwhile, starts it again and waits until the proxy has
// it ready.
func restartOne(ctx context.Context, cl *cluster, proxy *Proc, i int, r *Run) (Drain, error) {
	old := cl.gateways[i]
	d := Drain{Gateway: old.Name}
	r.Mark(EventTerm, old.Name)
	start := time.Now()
	if err := old.Signal(syscall.SIGTERM); err != nil {
		return d, err
	}
	last := watchStats(ctx, old, rollingDrainWait)
	if !old.Exited() {
		return d, fmt.Errorf("bench: rolling: %s still running %v after SIGTERM", old.Name, rollingDrainWait)
	}
	d.Ms = msOf(time.Since(start))
	d.SessionsMoved, d.SessionsLost = last.SessionsMoved, last.SessionsLostAtDrain
	r.Mark(EventStop, old.Name)
	p, err := cl.restartGateway(ctx, i)
	if err != nil {
		return d, err
	}
	if err := waitPool(ctx, proxy, []*Proc{p}); err != nil {
		return d, err
	}
	r.Mark(EventJoin, p.Name)
	return d, nil
}

// gatewayStats is the part of a gateway's GET /stats the scenario reads.
type gatewayStats struct {
	SessionsMoved       int64 `json:"sessions_moved"`
	SessionsLostAtDrain int64 `json:"sessions_lost_at_drain"`
}

// watchStats polls p's /stats until p exits (or d passes) and returns the
// last answer: a drained gateway stays up for its drain quiet period after
// its last move, so the last poll sees every move.
func watchStats(ctx context.Context, p *Proc, d time.Duration) gatewayStats {
	var last gatewayStats
	hc := &http.Client{Timeout: time.Second}
	defer hc.CloseIdleConnections()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if resp, err := hc.Get("http://" + p.Addr.HTTP + "/stats"); err == nil {
			var s gatewayStats
			if resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&s) == nil {
				last = s
			}
			resp.Body.Close()
		}
		select {
		case <-p.Done():
			return last
		case <-deadline.C:
			return last
		case <-ctx.Done():
			return last
		case <-tick.C:
		}
	}
}

// rollingViolations checks the scenario's own invariants: no call failed,
// no session lost (Report.Check covers the misrouted ones).
func rollingViolations(r *Report) []string {
	var v []string
	if r.CallsFailed != 0 {
		v = append(v, fmt.Sprintf("rolling: %d calls failed (%v), want 0", r.CallsFailed, r.Errors))
	}
	if r.Sessions != nil && r.Sessions.Lost != 0 {
		v = append(v, fmt.Sprintf("rolling: %d sessions lost, want 0", r.Sessions.Lost))
	}
	for _, d := range r.Drains {
		if d.SessionsLost != 0 {
			v = append(v, fmt.Sprintf("rolling: %s lost %d sessions when its drain ended", d.Gateway, d.SessionsLost))
		}
	}
	return v
}
