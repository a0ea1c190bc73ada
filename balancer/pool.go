package balancer

import (
	"cmp"
	"slices"

	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/health"
)

// PoolMember is one gateway as the proxy sees it, for the admin API's
// GET /pool.
type PoolMember struct {
	Name     string               `json:"name"`
	State    string               `json:"state"` // ready, draining or down
	Addrs    discovery.Addrs      `json:"addrs"`
	Modules  []string             `json:"modules,omitempty"`
	Weight   int                  `json:"weight"`
	Zone     string               `json:"zone,omitempty"`
	Instance discovery.InstanceID `json:"instance,omitempty"`
	Conns    int                  `json:"conns"`
	InFlight int64                `json:"in_flight"`
	Sessions int64                `json:"sessions"`
	Served   uint64               `json:"served"`
	// Check is the active checks' verdict (up or down); Ejected says
	// outlier detection took the gateway out; Breaker is its circuit
	// breaker's state (closed, open, half-open); LatencyUs its round-trip
	// estimate.
	// AdminDrain says an operator drained the gateway here (DrainGateway).
	AdminDrain bool   `json:"admin_drain,omitempty"`
	Check      string `json:"check"`
	Ejected    bool   `json:"ejected"`
	Breaker    string `json:"breaker"`
	LatencyUs  int64  `json:"latency_us"`
	// Health has the details: the active checks' counts and last error,
	// outlier detection's ejection count and time, the breaker's counts.
	Health *health.TargetStatus `json:"health,omitempty"`
}

// Stats are the proxy's counters.
type Stats struct {
	Panic             bool  `json:"panic"`
	Conns             int64 `json:"conns"`
	Active            int64 `json:"active_calls"`
	Sessions          int   `json:"sessions"`
	SessionsLost      int64 `json:"sessions_lost"`
	Retries           int64 `json:"retries"`
	RetriesDenied     int64 `json:"retries_denied"`
	CallbacksDropped  int64 `json:"callbacks_dropped"`
	EventsDropped     int64 `json:"events_dropped"`
	DeadlinesExceeded int64 `json:"deadlines_exceeded"`
	// TryTimeouts counts the attempts abandoned for another gateway
	// because their gateway did not answer within Config.TryTimeout.
	TryTimeouts int64 `json:"try_timeouts"`
	// LateReplies counts the gateways' replies dropped because their call
	// was no longer in flight there: its deadline passed at the proxy, or
	// its attempt was abandoned.
	LateReplies int64 `json:"late_replies"`
	// LostNotices counts the $session_lost EVENTs sent to clients.
	LostNotices int64 `json:"lost_notices"`
	// TopicDeliveries counts topic events delivered to subscribed sessions.
	TopicDeliveries int64 `json:"topic_deliveries"`
	// SessionsMoved counts sessions rebound because their draining gateway
	// handed them to another (MOVED).
	SessionsMoved int64 `json:"sessions_moved"`
	// Unauthenticated counts HELLOs refused UNAUTHENTICATED (Config.Auth);
	// ModuleCallsRefused the calls refused by Config.MaxModuleCalls.
	Unauthenticated    int64 `json:"unauthenticated"`
	ModuleCallsRefused int64 `json:"module_calls_refused"`
}

// Pool returns the gateways the proxy routes to, sorted by name.
func (p *Proxy) Pool() []PoolMember {
	p.mu.Lock()
	bs := make([]*backend, 0, len(p.backends))
	for _, b := range p.backends {
		bs = append(bs, b)
	}
	p.mu.Unlock()
	out := make([]PoolMember, 0, len(bs))
	breakers := make(map[string]*health.Breaker, len(bs))
	for _, b := range bs {
		if b.breaker != nil {
			breakers[b.name] = b.breaker
		}
	}
	details := map[string]health.TargetStatus{}
	for _, st := range health.Snapshot(p.checker, p.detector, breakers) {
		details[st.Name] = st
	}
	for _, b := range bs {
		b.mu.Lock()
		m := b.member
		b.mu.Unlock()
		st := "ready"
		switch {
		case !b.up.Load():
			st = "down"
		case b.draining.Load():
			st = "draining"
		}
		check := "up"
		if !b.checkUp.Load() {
			check = "down"
		}
		br := ""
		if b.breaker != nil {
			br = b.breaker.State().String()
		}
		out = append(out, PoolMember{
			Name: b.name, State: st, Addrs: m.Addrs, Modules: m.Modules, Weight: m.Weight, Zone: m.Zone,
			Instance: m.Instance, Conns: len(*b.conns.Load()), InFlight: b.outstanding.Load(),
			Sessions: b.sessions.Load(), Served: b.served.Load(),
			AdminDrain: b.adminDrain.Load(), Check: check, Ejected: b.ejected.Load(), Breaker: br, LatencyUs: b.ewma.Load() / 1000,
		})
		if st, ok := details[b.name]; ok {
			out[len(out)-1].Health = &st
		}
	}
	slices.SortFunc(out, func(a, b PoolMember) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() Stats {
	return Stats{
		Panic:             p.picker.Load().panic,
		Conns:             p.admission.Conns(),
		Active:            p.active.Load(),
		Sessions:          p.sessions.len(),
		SessionsLost:      p.stats.sessionsLost.Load(),
		Retries:           p.stats.retries.Load(),
		RetriesDenied:     p.stats.retriesDenied.Load(),
		CallbacksDropped:  p.stats.callbacksDropped.Load(),
		EventsDropped:     p.stats.eventsDropped.Load(),
		DeadlinesExceeded: p.stats.deadlinesExceeded.Load(),
		TryTimeouts:       p.stats.tryTimeouts.Load(),
		LateReplies:       p.stats.lateReplies.Load(),
		LostNotices:       p.stats.lostNotices.Load(),
		TopicDeliveries:   p.stats.topicDeliveries.Load(),
		SessionsMoved:     p.stats.sessionsMoved.Load(),
		// Credentials and the module cap (auth.go).
		Unauthenticated:    p.stats.unauthenticated.Load(),
		ModuleCallsRefused: p.stats.moduleCallsRefused.Load(),
	}
}
