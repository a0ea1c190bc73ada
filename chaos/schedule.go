package chaos

import (
	"math/rand/v2"
	"strconv"
	"time"
)

// AllFaults are the fault kinds a run draws from by default on loopback.
var AllFaults = []string{FaultKillGateway, FaultStopGateway, FaultTermGateway, FaultKillProxy,
	FaultTermProxy, FaultSlowGateway, FaultFailGateway, FaultJoinGateway}

// PartitionFaults are the kinds only a run in network namespaces
// (NetNetns) can play.
var PartitionFaults = []string{FaultPartitionGateway, FaultIsolateGateway}

// NetnsFaults are the fault kinds a run in network namespaces draws from by
// default: all of them.
var NetnsFaults = append(append([]string(nil), AllFaults...), PartitionFaults...)

// ScheduleParams shape a schedule.
type ScheduleParams struct {
	Gateways, Proxies int
	// Faults is how many faults to draw; Duration bounds their start times
	// instead when Faults is 0.
	Faults   int
	Duration time.Duration
	// MaxShare is the share of the gateways that may be under a fault at
	// once (at least one may always be, and at least one never is).
	MaxShare float64
	// Kinds are the fault kinds to draw from (default AllFaults).
	Kinds []string
	// MinGap and MaxGap bound the time between two faults' starts.
	MinGap, MaxGap time.Duration
	// MaxJoins bounds the gateways joined over the run.
	MaxJoins int
}

func (p ScheduleParams) withDefaults() ScheduleParams {
	if p.MaxShare <= 0 {
		p.MaxShare = 0.4
	}
	if len(p.Kinds) == 0 {
		p.Kinds = AllFaults
	}
	if p.MinGap <= 0 {
		p.MinGap = 1500 * time.Millisecond
	}
	if p.MaxGap < p.MinGap {
		p.MaxGap = max(p.MinGap, 4*time.Second)
	}
	if p.MaxJoins == 0 {
		p.MaxJoins = 2
	}
	return p
}

// Time a fault's target stays busy after its undo starts: a restarted
// process must start and be found, a drained one must finish.
const (
	restartBusy = 3 * time.Second
	drainBusy   = 6 * time.Second
	// healBusy: after a heal the cut-off proxies must find the gateway up
	// again (active checks; after an isolation, gossip's refutation of
	// its death and a rejoin).
	healBusy = 5 * time.Second
)

// Schedule draws a run's faults from seed. It is a pure function of its
// arguments, so the same seed replays the same schedule: it models which
// targets are busy from the faults' own durations, never from the run.
func Schedule(seed int64, p ScheduleParams) []Fault {
	p = p.withDefaults()
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(seed)>>32|1))
	var gws, proxies []string
	for i := 1; i <= p.Gateways; i++ {
		gws = append(gws, "gw"+strconv.Itoa(i))
	}
	for i := 1; i <= p.Proxies; i++ {
		proxies = append(proxies, "p"+strconv.Itoa(i))
	}
	busyUntil := map[string]int64{}               // target → ms
	joinedAt := map[string]int64{}                // a joined gateway is a target once it is up
	between := func(lo, hi time.Duration) int64 { // ms in [lo, hi]
		return (lo + time.Duration(rng.Int64N(int64(hi-lo)+1))).Milliseconds()
	}
	var out []Fault
	t := int64(0)
	joins := 0
	for len(out) < p.Faults || (p.Faults == 0 && time.Duration(t)*time.Millisecond < p.Duration) {
		t += between(p.MinGap, p.MaxGap)
		if p.Faults == 0 && time.Duration(t)*time.Millisecond >= p.Duration {
			break
		}
		free := func(names []string) []string {
			var out []string
			for _, n := range names {
				if busyUntil[n] <= t && joinedAt[n] <= t {
					out = append(out, n)
				}
			}
			return out
		}
		faultedGws := 0
		for _, g := range gws {
			if busyUntil[g] > t {
				faultedGws++
			}
		}
		maxGws := max(1, int(p.MaxShare*float64(len(gws))))
		maxGws = min(maxGws, len(gws)-1)
		faultedProxies := len(proxies) - len(free(proxies))
		kind := p.Kinds[rng.IntN(len(p.Kinds))]
		f := Fault{T: t, Kind: kind}
		switch kind {
		case FaultJoinGateway:
			if joins >= p.MaxJoins {
				continue
			}
			joins++
			name := "gw" + strconv.Itoa(p.Gateways+joins)
			gws = append(gws, name)
			joinedAt[name] = t + restartBusy.Milliseconds()
			f.Target = name
		case FaultKillProxy, FaultTermProxy:
			cands := free(proxies)
			if faultedProxies >= len(proxies)-1 || len(cands) == 0 {
				continue
			}
			f.Target = cands[rng.IntN(len(cands))]
			f.Duration = between(300*time.Millisecond, 2*time.Second)
			busyUntil[f.Target] = t + f.Duration + restartBusy.Milliseconds()
			if kind == FaultTermProxy {
				busyUntil[f.Target] += drainBusy.Milliseconds()
			}
		default:
			cands := free(gws)
			if faultedGws >= maxGws || len(cands) == 0 {
				continue
			}
			f.Target = cands[rng.IntN(len(cands))]
			switch kind {
			case FaultKillGateway:
				f.Duration = between(500*time.Millisecond, 4*time.Second)
				busyUntil[f.Target] = t + f.Duration + restartBusy.Milliseconds()
			case FaultTermGateway:
				f.Duration = between(500*time.Millisecond, 2*time.Second)
				busyUntil[f.Target] = t + f.Duration + drainBusy.Milliseconds() + restartBusy.Milliseconds()
			case FaultStopGateway:
				f.Duration = between(300*time.Millisecond, 3*time.Second)
				busyUntil[f.Target] = t + f.Duration + restartBusy.Milliseconds()
			case FaultSlowGateway, FaultFailGateway:
				f.Duration = between(2*time.Second, 6*time.Second)
				busyUntil[f.Target] = t + f.Duration + 1000
			case FaultPartitionGateway:
				f.Peer = proxies[rng.IntN(len(proxies))]
				f.Duration = between(1*time.Second, 6*time.Second)
				busyUntil[f.Target] = t + f.Duration + healBusy.Milliseconds()
			case FaultIsolateGateway:
				// Some shorter than gossip's failure detection (6-10 s),
				// some longer: the gateway is then declared dead.
				f.Duration = between(2*time.Second, 14*time.Second)
				busyUntil[f.Target] = t + f.Duration + healBusy.Milliseconds()
			}
		}
		out = append(out, f)
	}
	return out
}
