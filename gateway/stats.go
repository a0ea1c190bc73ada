package gateway

import (
	"maps"
	"sync/atomic"
)

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
	// SessionsMoved counts the sessions this gateway handed over to
	// another while it drained, SessionsMovedTo the same by the gateway
	// that took them; SessionsAdopted those it took over from others.
	// SessionsLostAtDrain counts the sessions it still held when a drain
	// ended (not movable, or no gateway took them before DrainGrace).
	// CallsRelayed counts the calls of moved sessions it passed on to their
	// new gateway for a proxy (protocol/SPEC.md section 7, Handoff).
	// SessionsMoving counts the sessions on their way now.
	SessionsMoving      int               `json:"sessions_moving"`
	SessionsMoved       uint64            `json:"sessions_moved"`
	SessionsMovedTo     map[string]uint64 `json:"sessions_moved_to"`
	SessionsAdopted     uint64            `json:"sessions_adopted"`
	SessionsLostAtDrain uint64            `json:"sessions_lost_at_drain"`
	CallsRelayed        uint64            `json:"calls_relayed"`
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
	s.SessionsMoving = g.sessions.moving()
	s.SessionsMoved, s.SessionsAdopted = g.sessionsMoved.Load(), g.sessionsAdopted.Load()
	s.SessionsLostAtDrain, s.CallsRelayed = g.sessionsLost.Load(), g.callsRelayed.Load()
	g.handoffMu.Lock()
	s.SessionsMovedTo = maps.Clone(g.movedTo)
	g.handoffMu.Unlock()
	for name, ms := range g.served {
		s.CallsServed[name] = ms.served.Load()
		s.CallsFailed[name] = ms.failed.Load()
	}
	return s
}
