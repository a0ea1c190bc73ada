package gateway

import "sync/atomic"

// Stats is a snapshot of a gateway's activity, served as JSON on /stats.
type Stats struct {
	Name          string `json:"name"`
	State         string `json:"state"`
	Connections   int    `json:"connections"`
	Sessions      int    `json:"sessions"`
	CallsInFlight int64  `json:"calls_in_flight"`
	// Subscriptions counts the topic subscriptions of direct clients'
	// sessions (Publish).
	Subscriptions int `json:"subscriptions"`
	// CallsServed counts, per module@version, the calls answered with a
	// RESULT; CallsFailed those answered with an ERROR after admission.
	CallsServed map[string]uint64 `json:"calls_served"`
	CallsFailed map[string]uint64 `json:"calls_failed"`
}

// moduleStats counts one module's calls on one gateway.
type moduleStats struct {
	served atomic.Uint64
	failed atomic.Uint64
}

// Stats returns a snapshot of the gateway's counters.
func (g *Gateway) Stats() Stats {
	g.mu.Lock()
	conns := len(g.conns)
	g.mu.Unlock()
	s := Stats{
		Name:          g.cfg.Name,
		State:         g.State().String(),
		Connections:   conns,
		Sessions:      g.sessions.count(),
		CallsInFlight: g.inflight.Load(),
		Subscriptions: g.topics.count(),
		CallsServed:   make(map[string]uint64, len(g.served)),
		CallsFailed:   make(map[string]uint64, len(g.served)),
	}
	for name, ms := range g.served {
		s.CallsServed[name] = ms.served.Load()
		s.CallsFailed[name] = ms.failed.Load()
	}
	return s
}
