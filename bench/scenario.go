package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"time"

	"github.com/graftlb/graftlb/internal/child"
)

// Scenarios are the names RunScenario knows.
var Scenarios = []string{"scaleout", "failover", "drain", "compare", "rolling", "soak", "transport"}

// Defaults of Scenario.
const (
	DefaultScenarioGateways = 4 // failover, drain and rolling
	DefaultCompareGateways  = 3 // compare: 8 connections do not split evenly over 3
	DefaultTargetGateway    = "gw2"
)

// DefaultPools are the pool sizes of scaleout.
var DefaultPools = []int{1, 2, 4, 8}

// DefaultScaleoutWorkers is the calls each scaleout gateway executes at once.
const DefaultScaleoutWorkers = 4

// Scenario configures RunScenario. Zero fields take their defaults.
type Scenario struct {
	// Name is scaleout, failover, drain, compare, rolling, soak or transport.
	Name string
	// Binary is the graftlb binary that runs the gateways and proxies.
	Binary string
	// HAProxy and Nginx are the peer proxies' binaries for compare
	// (default: FindHAProxy, FindNginx).
	HAProxy string
	Nginx   string
	// Load is the load of each run; the scenario sets Target and Label,
	// and, unless set, the workload (scaleout sleep, failover and drain
	// mixed, compare stateless).
	Load Config
	// Gateways is the pool size (failover, drain and rolling 4, compare,
	// soak and transport 3).
	Gateways int
	// Pools are scaleout's pool sizes (default 1, 2, 4, 8).
	Pools []int
	// Workers caps the calls each scaleout gateway executes at once
	// (gateway --workers; default 4), so that a gateway's capacity is
	// finite and adding gateways adds capacity.
	Workers int
	// At is when failover and drain signal the gateway, and when rolling
	// restarts its first (default 40% of the duration; rolling 15%).
	At time.Duration
	// Target is the gateway failover kills and drain drains (default gw2).
	Target string
	// Discovery is how the proxy finds the gateways: static (default) or
	// gossip.
	Discovery string
	// SampleEvery is how often soak samples every process (default 10s).
	SampleEvery time.Duration
	// MaxSessions is the soak proxy's --max-sessions, the table it fills
	// (default 1000); SessionIdle is its --session-idle and the gateways'
	// --session-ttl (default 30s).
	MaxSessions int
	SessionIdle time.Duration
	// Log receives a line as each run starts (nil: none).
	Log io.Writer
	// DurableCalls is how many durable calls transport submits with every
	// gateway stopped (default 300).
	DurableCalls int
}

func (sc Scenario) withDefaults() Scenario {
	if sc.Gateways <= 0 {
		sc.Gateways = DefaultScenarioGateways
		switch sc.Name {
		case "compare", "transport":
			sc.Gateways = DefaultCompareGateways
		case "soak":
			sc.Gateways = DefaultSoakGateways
		}
	}
	if len(sc.Pools) == 0 {
		sc.Pools = DefaultPools
	}
	if sc.Workers <= 0 {
		sc.Workers = DefaultScaleoutWorkers
	}
	sc.Pools = slices.Clone(sc.Pools)
	slices.Sort(sc.Pools)
	sc.Pools = slices.Compact(sc.Pools)
	if sc.Load.Duration <= 0 {
		sc.Load.Duration = DefaultDuration
	}
	if sc.At <= 0 {
		sc.At = sc.Load.Duration * 2 / 5
		if sc.Name == "rolling" {
			sc.At = sc.Load.Duration * 3 / 20
		}
	}
	if sc.Target == "" {
		sc.Target = DefaultTargetGateway
	}
	if sc.Discovery == "" {
		sc.Discovery = DiscoveryStatic
	}
	if sc.SampleEvery <= 0 {
		sc.SampleEvery = DefaultSampleEvery
	}
	if sc.MaxSessions <= 0 {
		sc.MaxSessions = DefaultSoakMaxSessions
	}
	if sc.SessionIdle <= 0 {
		sc.SessionIdle = DefaultSoakSessionIdle
	}
	if sc.Log == nil {
		sc.Log = io.Discard
	}
	return sc
}

// Validate reports a scenario that cannot run.
func (sc Scenario) Validate() error {
	var errs []error
	if !slices.Contains(Scenarios, sc.Name) {
		errs = append(errs, fmt.Errorf("scenario %q: want one of %v", sc.Name, Scenarios))
	}
	if sc.Binary == "" {
		errs = append(errs, errors.New("binary: empty"))
	}
	if sc.Discovery != "" && sc.Discovery != DiscoveryStatic && sc.Discovery != DiscoveryGossip {
		errs = append(errs, fmt.Errorf("discovery %q: want static or gossip", sc.Discovery))
	}
	if (sc.Name == "failover" || sc.Name == "drain" || sc.Name == "rolling") && sc.Gateways == 1 {
		errs = append(errs, errors.New("gateways: failover, drain and rolling need at least 2"))
	}
	for _, n := range sc.Pools {
		if n <= 0 {
			errs = append(errs, fmt.Errorf("pools: %d is not a pool size", n))
		}
	}
	if sc.At > 0 && sc.Load.Duration > 0 && sc.At >= sc.Load.Duration {
		errs = append(errs, fmt.Errorf("at: %v is not before the end (%v)", sc.At, sc.Load.Duration))
	}
	if sc.SampleEvery < 0 || sc.SessionIdle < 0 || sc.MaxSessions < 0 {
		errs = append(errs, errors.New("soak: negative sample-every, session-idle or max-sessions"))
	}
	if d := sc.withDefaults(); sc.Name == "soak" && sc.Load.Duration > 0 && sc.Load.Duration < minSoakDuration(d.SessionIdle, d.SampleEvery) {
		errs = append(errs, fmt.Errorf("soak: duration %v is too short to judge: the table fills in about one session idle (%v), "+
			"the window starts one later (no earlier than a third of the soak) and needs %d samples every %v; want at least %v",
			sc.Load.Duration, d.SessionIdle, minWindowSamples, d.SampleEvery, minSoakDuration(d.SessionIdle, d.SampleEvery)))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bench: scenario: %w", err)
	}
	return nil
}

// RunScenario runs the scenario and returns its report. Every process it
// starts is killed before it returns. When ctx ends, the run in progress
// stops, and the report holds the runs done so far with a note.
func RunScenario(ctx context.Context, sc Scenario) (*ScenarioReport, error) {
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	sc = sc.withDefaults()
	rep := &ScenarioReport{Scenario: sc.Name, Runs: []*Report{}, Events: []Event{}}
	if la, ok := loadAverage(); ok {
		rep.Notes = append(rep.Notes, fmt.Sprintf("load average %.2f on %d CPUs before the scenario started its processes",
			la, runtime.NumCPU()))
	}
	var err error
	switch sc.Name {
	case "scaleout":
		err = scaleout(ctx, sc, rep)
	case "failover":
		err = failover(ctx, sc, rep, EventKill)
	case "drain":
		err = failover(ctx, sc, rep, EventTerm)
	case "compare":
		err = compare(ctx, sc, rep)
	case "rolling":
		err = rolling(ctx, sc, rep)
	case "soak":
		err = soak(ctx, sc, rep)
	case "transport":
		err = transportScenario(ctx, sc, rep)
	}
	if ctx.Err() != nil {
		rep.Notes = append(rep.Notes, "interrupted: the report holds the runs done so far")
		err = nil
	}
	for _, r := range rep.Runs {
		rep.Violations = append(rep.Violations, r.Check()...)
	}
	return rep, err
}

// runLoad runs one load against load.Target, calling during (if set) while
// it runs, and measures proxy's CPU time per call and resident memory (if
// set), over the proxy's processes.
func runLoad(ctx context.Context, sc Scenario, load Config, proxy *Proc, during func(*Run)) (*Report, error) {
	fmt.Fprintf(sc.Log, "%s: run %s: %s workload, %s loop, %d users on %d connections, %v, against %s\n",
		sc.Name, load.Label, orDefault(string(load.Workload), string(Stateless)), load.mode(), orDefaultInt(load.Concurrency, DefaultConcurrency),
		orDefaultInt(load.Conns, DefaultConns), load.Duration, load.Target)
	var u0 child.Usage
	if proxy != nil {
		var err error
		if u0, err = proxy.Usage(); err != nil {
			return nil, err
		}
	}
	r, err := Start(ctx, load)
	if err != nil {
		return nil, err
	}
	var peak <-chan int64
	if proxy != nil {
		peak = watchRSS(proxy, r.Done())
	}
	if during != nil {
		during(r)
	}
	rep := r.Wait()
	if proxy == nil {
		return rep, nil
	}
	rss := <-peak
	if proxy.Exited() {
		return rep, nil
	}
	u1, err := proxy.Usage()
	if calls := rep.CallsOK + rep.CallsFailed; err == nil && calls > 0 {
		v := float64((u1.CPU - u0.CPU).Microseconds()) / float64(calls)
		rep.ProxyCPUUsPerCall = &v
		vcpu := v / 1000 // µs per call × 1,000 calls/s = µs per s
		rep.ProxyVCPUPer1k = &vcpu
	}
	if rss > 0 {
		mb := float64(rss) / 1e6
		rep.ProxyRSSMB = &mb
		if rep.ThroughputPerS > 0 {
			per := mb / (rep.ThroughputPerS / 1000)
			rep.ProxyMBPer1k = &per
		}
	}
	return rep, nil
}

// rssSampleEvery is how often watchRSS reads the proxy's memory.
const rssSampleEvery = 100 * time.Millisecond

// watchRSS samples the resident memory of proxy's processes every
// rssSampleEvery until done is closed, then sends the highest sample (0 if
// none could be read).
func watchRSS(proxy *Proc, done <-chan struct{}) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var peak int64
		t := time.NewTicker(rssSampleEvery)
		defer t.Stop()
		for {
			if u, err := proxy.Usage(); err == nil {
				peak = max(peak, u.RSS)
			}
			select {
			case <-done:
				out <- peak
				return
			case <-t.C:
			}
		}
	}()
	return out
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func orDefaultInt(n, d int) int {
	if n <= 0 {
		return d
	}
	return n
}
