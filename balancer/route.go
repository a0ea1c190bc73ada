package balancer

import (
	"github.com/graftlb/graftlb/protocol"
)

// routeStateless sends a stateless call to the gateway the snapshot's
// stateless picker chooses.
// A gateway the frame provably did not reach (no connection, or its
// connection closed before the frame left) is skipped and another picked,
// up to MaxAttempts, without drawing on the retry budget: nothing ran. A
// call that comes back for a second attempt (c.attempts > 0: its gateway
// died with it in flight and it is IDEMPOTENT) draws on the budget. skip is
// a gateway to avoid.
func (p *Proxy) routeStateless(c call, module, raw []byte, skip *backend) {
	if c.attempts > 0 && !p.takeRetry(&c) {
		c.fail(protocol.CodeUnavailable, "gateway failed with the call in flight and the retry budget is spent")
		return
	}
	pk := p.picker.Load()
	in := pickInfo{module: module, skip: skip, now: c.start} // when the client's frame arrived
	if c.attempts > 0 {
		in.now = p.now() // a retry: its own latency sample starts now
	}
	circuitOpen := false
	var err error
	for try := 0; try < p.cfg.MaxAttempts; try++ {
		var pc pick
		if pc, err = pk.stateless.Pick(in); err != nil {
			break
		}
		b := pc.b
		in.skip = b
		u := b.pickConn()
		if u == nil {
			continue
		}
		t, refused := b.breaker.Allow()
		if refused != nil {
			circuitOpen = true
			continue // its breaker refuses: another gateway
		}
		if c.kept == nil && c.flags.Has(protocol.FlagIdempotent) {
			c.kept = keepFrame(raw)
			raw = c.kept.b
		}
		c.attempts++
		c.start = in.now
		c.admitted(b, t, module)
		if u.forward(raw, c) == nil {
			return
		}
		c.unsent()
		c.attempts--
	}
	switch {
	case err == errEmptyPool:
		c.failUnrouted(module, protocol.CodeUnavailable, errEmptyPool.Error())
	case err == errUnknownModule:
		c.failUnrouted(module, protocol.CodeNotFound, "no gateway in the pool serves "+string(module))
	case circuitOpen:
		c.failUnrouted(module, protocol.CodeCircuitOpen, "the circuit breakers of the gateways for "+string(module)+" are open")
	default:
		c.failUnrouted(module, protocol.CodeUnavailable, "no gateway could take the call for "+string(module))
	}
}

// routeStateful sends a call of session c.sess to the gateway that holds
// the session, placing the session first if this proxy has not bound it.
// Until a gateway answers one of its calls, the binding is tentative and the
// frame is kept, so that a refusal (DRAINING, OVERLOADED, NOT_OWNER) can
// move it down the preference list.
func (p *Proxy) routeStateful(c call, module, raw []byte, scratch *pickScratch) {
	s := c.sess
	for probe := 0; probe <= p.cfg.MaxOwnerProbes; probe++ {
		pl := p.owner(s, module, c.flags.Has(protocol.FlagNewSession), scratch)
		b := pl.b
		if b == nil {
			if pl.code == protocol.CodeSessionLost {
				p.sessions.forgetIfEmpty(s) // a resumed session nobody holds
			}
			c.failUnrouted(module, pl.code, pl.msg)
			return
		}
		flags := c.flags &^ protocol.FlagNewSession
		if pl.fresh && !pl.confirmed {
			flags |= protocol.FlagNewSession
		}
		protocol.SetFlags(raw, flags)
		c.flags = flags
		if !pl.confirmed && c.kept == nil {
			c.kept = keepFrame(raw)
			raw = c.kept.b
		}
		if pl.confirmed && p.picker.Load().fails(b) {
			// A hung gateway (its checks fail) would hold the call until
			// its deadline: fail it now. A draining one is alive and busy
			// handing its sessions over: the call goes to it, to run or be
			// relayed (snapshot.failing).
			c.failUnrouted(module, protocol.CodeUnavailable, "gateway "+b.name+" holding the session fails its health checks")
			return
		}
		t, refused := b.breaker.Allow()
		if refused != nil {
			if pl.confirmed {
				c.failUnrouted(module, protocol.CodeCircuitOpen, "the circuit breaker of gateway "+b.name+", which holds the session, is open")
				return
			}
			if !p.refused(s, b, protocol.CodeCircuitOpen) {
				break
			}
			continue // a new session goes to the next gateway
		}
		c.attempts = 1
		c.admitted(b, t, module)
		if u := b.pickConn(); u != nil && u.forward(raw, c) == nil {
			return
		}
		c.unsent()
		if pl.confirmed && b.awaitVerdict(p.cfg.DialTimeout) {
			// Its connection just broke: once the redial tells whether the
			// gateway lives, route again (SESSION_LOST if it died).
			continue
		}
		// Not sent: a tentative owner is skipped; a confirmed one is down.
		if pl.confirmed || !p.refused(s, b, protocol.CodeUnavailable) {
			c.failUnrouted(module, protocol.CodeUnavailable, "gateway "+b.name+" holding the session is unreachable")
			return
		}
	}
	c.failUnrouted(module, protocol.CodeUnavailable, "no gateway took the session")
}

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
func (p *Proxy) refused(s *session, b *backend, why protocol.Code) bool {
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
func (p *Proxy) confirm(s *session, b *backend) {
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
	_ = d.pc.Send(&protocol.Frame{Type: protocol.TypeEvent, Session: s.id,
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
