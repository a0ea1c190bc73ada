package balancer

import (
	"time"

	"github.com/graftlb/graftlb/protocol"
)

// LatencyBounds are the upper bounds of the call latency histogram's
// buckets (graftlb_call_duration_seconds); GatewayView.Latency has one
// count more, for slower calls.
var LatencyBounds = func() []time.Duration {
	out := make([]time.Duration, len(latencyBounds))
	for i, b := range latencyBounds {
		out[i] = time.Duration(b)
	}
	return out
}()

// GatewayView is one gateway of the pool with its cumulative counters, what
// a dashboard samples to draw rates and percentiles.
type GatewayView struct {
	PoolMember
	// Up says the proxy routes new sessions and stateless calls to it
	// (graftlb_gateway_up).
	Up bool `json:"up"`
	// Calls counts its settled calls; Errors those settled with an error
	// code.
	Calls  uint64 `json:"calls"`
	Errors uint64 `json:"errors"`
	// SessionsLost, Ejections and BreakerTrips are its counters.
	SessionsLost uint64 `json:"sessions_lost"`
	Ejections    uint64 `json:"ejections"`
	BreakerTrips uint64 `json:"breaker_trips"`
	// Latency counts its answered calls per bucket of LatencyBounds (not
	// cumulative), both kinds together.
	Latency []uint64 `json:"latency"`
}

// View is the pool and the proxy's counters at one moment.
type View struct {
	Gateways []GatewayView `json:"gateways"`
	Stats    Stats         `json:"stats"`
}

// View returns the pool and the counters now, and the gateways that left
// the pool in the last minutes (state "left") with their counters. With
// metrics off the counters are zero.
func (p *Proxy) View() View {
	counters := map[string]*gwMetrics{}
	for _, g := range p.metrics.all() {
		counters[g.name] = g
	}
	pk := p.picker.Load()
	up := map[string]bool{}
	for i, b := range pk.backends {
		up[b.name] = pk.admit[i]
	}
	v := View{Stats: p.Stats()}
	members := p.Pool()
	inPool := map[string]bool{}
	for _, m := range members {
		inPool[m.Name] = true
	}
	for _, g := range p.metrics.all() {
		if g.name != "" && !inPool[g.name] {
			members = append(members, PoolMember{Name: g.name, State: "left"}) // counters kept after it left
		}
	}
	for _, m := range members {
		gv := GatewayView{PoolMember: m, Up: up[m.Name], Latency: make([]uint64, len(latencyBounds)+1)}
		gv.Health = nil // the dashboard needs none of the details
		if g := counters[m.Name]; g != nil {
			gv.SessionsLost, gv.Ejections, gv.BreakerTrips = g.lost.Load(), g.ejections.Load(), g.trips.Load()
			count := func(mc *moduleCalls) {
				for k := range numKinds {
					for i := range protocol.CodeSlots {
						n := mc.n[k][i].Load()
						gv.Calls += n
						if i != 0 {
							gv.Errors += n
						}
					}
				}
			}
			for _, mc := range *g.mods.Load() {
				count(mc)
			}
			count(&g.other)
			for k := range numKinds {
				counts, _, _ := g.lat[k].snapshot()
				for i, n := range counts {
					gv.Latency[i] += n
				}
			}
		}
		v.Gateways = append(v.Gateways, gv)
	}
	return v
}
