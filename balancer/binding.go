package balancer

import (
	"github.com/graftlb/graftlb/protocol"
)

// This file keeps the binding of sessions to gateways, which deciding a
// stateful call reads (owner) and settling one writes: a tentative owner
// refused the session (refused) or answered its call (confirm), the owner
// died or no longer holds it (lose), or handed it over while draining
// (moved). Every change is made under the session's lock and published to
// its held pointer for the lock-free readers.

// placement is where owner says a session's call goes: a gateway, or the
// error the client gets.
type placement struct {
	b                *backend
	confirmed, fresh bool
	code             protocol.Code
	msg              string
}

// owner returns the session's gateway, binding it tentatively when unbound.
// newSession says the call carries NEW_SESSION: a session the proxy first
// saw in a stateless call (so it could not know) may then be created.
func (p *Proxy) owner(s *session, module []byte, newSession bool, scratch *pickScratch) placement {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lost {
		return placement{code: protocol.CodeSessionLost, msg: "the session's gateway is gone"}
	}
	if newSession && !s.confirmed {
		s.fresh = true
	}
	b := s.owner
	if b != nil && !b.holds(s.epoch) {
		if s.confirmed {
			// Its clients were told when b was found dead.
			p.loseLocked(s)
			return placement{code: protocol.CodeSessionLost, msg: "gateway " + b.name + " that held the session is gone"}
		}
		s.skip(b, protocol.CodeUnavailable)
		s.owner, b = nil, nil
	}
	if b == nil {
		pk := p.picker.Load()
		pc, err := pk.sessions.Pick(pickInfo{module: module, key: s.key, fresh: s.fresh, tried: s.tried, scratch: scratch})
		switch err {
		case nil:
			b = pc.b
		case errEmptyPool:
			return placement{code: protocol.CodeUnavailable, msg: errEmptyPool.Error()}
		case errUnknownModule:
			return placement{code: protocol.CodeNotFound, msg: "no gateway in the pool serves " + string(module)}
		}
		if b == nil {
			if s.fresh {
				return placement{code: protocol.CodeUnavailable, msg: "no gateway admits new sessions for " + string(module)}
			}
			if pk.unreachable(module, s.tried) {
				// The holder may be a gateway that is not connected now.
				s.tried, s.why = nil, nil
				return placement{code: protocol.CodeUnavailable, msg: "the session's gateway is not reachable now"}
			}
			if p.settling() {
				// A proxy that just started may not know the whole pool
				// yet (gossip): the holder may be a gateway it has not
				// heard of. Try again, rather than declare it lost.
				s.tried = nil
				return placement{code: protocol.CodeUnavailable, msg: "the proxy is still discovering its pool"}
			}
			p.loseLocked(s)
			return placement{code: protocol.CodeSessionLost, msg: "no gateway holds the session"}
		}
		s.owner, s.epoch = b, b.epoch.Load()
	}
	return placement{b: b, confirmed: s.confirmed, fresh: s.fresh}
}

// refused records that b did not take session s (it refused, or could not
// be reached), and why (the code of its refusal; UNAVAILABLE when it could
// not be reached, CIRCUIT_OPEN when its breaker refused), and reports
// whether the call should be routed again: true when the session is not
// bound to b for good.
func (s *session) refused(b *backend, why protocol.Code) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.owner != b {
		return !s.lost // another call moved it already; follow
	}
	if s.confirmed {
		return false
	}
	s.skip(b, why)
	s.owner = nil
	return true
}

// confirm makes b the session's owner for good once b answered a call of
// it. A session confirmed on b already (every reply but its first) is
// seen so without taking its lock.
func (s *session) confirm(b *backend) {
	if s.held.Load() == b {
		return
	}
	s.mu.Lock()
	if s.owner == b && !s.confirmed && !s.lost {
		s.confirmed = true
		s.fresh = false
		b.sessions.Add(1)
		b.m.inc(placedOf)
		s.syncHeldLocked()
	}
	s.mu.Unlock()
}

// loseLocked marks s lost. Caller must hold s.mu. It reports whether a
// confirmed session was lost just now: the caller then tells its client
// (noticeLost) once it has let go of s.mu.
func (p *Proxy) loseLocked(s *session) bool {
	if s.lost {
		return false
	}
	s.lost = true
	s.syncHeldLocked()
	p.stats.sessionsLost.Add(1)
	p.metrics.lostSession(s)
	if s.owner != nil && s.confirmed {
		s.owner.sessions.Add(-1)
		return true
	}
	return false
}

// anyEpoch makes lose take a session of b bound in any epoch.
const anyEpoch = ^uint64(0)

// lose marks s lost if it is confirmed on b, bound in epoch upTo or
// before, and tells its client.
func (p *Proxy) lose(s *session, b *backend, upTo uint64, why string) {
	s.mu.Lock()
	lost := s.owner == b && s.confirmed && s.epoch <= upTo && p.loseLocked(s)
	s.mu.Unlock()
	if lost {
		p.noticeLost(s, why)
	}
}

// noticeLost tells the client connection bound to s that its session is
// lost (SPEC.md section 7: an EVENT "$session_lost"), so that a client
// waiting for events learns it without making a call.
func (p *Proxy) noticeLost(s *session, why string) {
	d := s.client.Load().get()
	if d == nil {
		return
	}
	p.stats.lostNotices.Add(1)
	d.unsubscribe(s.id) // a lost session's subscriptions end with it
	_ = d.pc.Send(&protocol.Frame{Type: protocol.TypeEvent, Session: s.cid,
		Method: []byte(protocol.EventSessionLost), Body: protocol.AppendErrorBody(nil, protocol.CodeSessionLost, why, "")})
}

// loseAllOn marks lost every confirmed session bound to b in epoch upTo
// or before, and tells their clients: b died or left the pool. It walks
// the whole table, off the data path (a gateway's death is rare).
func (p *Proxy) loseAllOn(b *backend, upTo uint64, why string) {
	var held []*session
	p.sessions.each(func(s *session) {
		if s.bound(b) {
			held = append(held, s)
		}
	})
	for _, s := range held {
		p.lose(s, b, upTo, why)
	}
	if len(held) > 0 {
		p.cfg.Logger.Warn().Str("gateway", b.name).Int("sessions", len(held)).Msg("sessions lost with their gateway; clients told")
	}
}

// moved rebinds a session that its gateway from handed to another gateway
// while draining (SPEC.md section 7, Handoff): its calls go to the gateway
// the MOVED frame names from now on. A gateway this proxy is not connected
// to leaves the session unbound: its next call finds the holder by the
// NOT_OWNER walk.
func (p *Proxy) moved(from *backend, f *protocol.Frame) {
	s := p.sessions.lookup(f.Session)
	if s == nil {
		return // not bound here
	}
	to := p.picker.Load().named(f.Module)
	s.mu.Lock()
	if s.owner == from && !s.lost {
		if s.confirmed {
			from.sessions.Add(-1)
		}
		if to != nil && to.up.Load() {
			s.owner, s.epoch, s.confirmed, s.fresh, s.tried = to, to.epoch.Load(), true, false, nil
			to.sessions.Add(1)
		} else {
			s.owner, s.confirmed, s.fresh, s.tried = nil, false, false, nil
		}
		s.syncHeldLocked()
		p.stats.sessionsMoved.Add(1)
	}
	s.mu.Unlock()
}
