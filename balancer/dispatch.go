package balancer

import (
	"github.com/graftlb/graftlb/protocol"
)

// reply routes a gateway's RESULT or ERROR for upstream call id to the
// client that made the call. A refusal during placement (NOT_OWNER, or
// DRAINING/OVERLOADED for a new session) re-routes the kept frame instead.
func (p *Proxy) reply(u *upstream, id uint32, f *protocol.Frame, raw []byte) {
	pd, ok := u.take(id)
	if !ok {
		return // expired at the proxy; the client was answered already
	}
	pd.out = &u.out // this is u's reader
	b := u.b
	b.served.Add(1)
	b.m.received(len(raw))
	p.endRetry(&pd)
	code := protocol.Code(0)
	if f.Type == protocol.TypeError {
		code, _, _, _ = protocol.DecodeErrorBody(f.Body)
	}
	b.outcome(&pd, !failureCode(code), p.now())
	if pd.sess == nil && pd.kept != nil && failureCode(code) && code != protocol.CodeDeadlineExceeded {
		// An idempotent call the gateway failed: try another, within the
		// budget.
		p.retryStateless(pd, b)
		return
	}
	if s := pd.sess; s != nil {
		refusal := code == protocol.CodeNotOwner ||
			(pd.flags.Has(protocol.FlagNewSession) && (code == protocol.CodeDraining || code == protocol.CodeOverloaded))
		if refusal && pd.kept != nil && p.refused(s, b, code) {
			if code == protocol.CodeNotOwner {
				p.stats.notOwnerWalks.Add(1)
			}
			p.reroute(pd)
			return
		}
		if code == protocol.CodeNotOwner {
			// The owner no longer holds the session (its TTL passed): lost.
			p.lose(s, b, anyEpoch, "gateway "+b.name+" no longer holds the session")
			p.fail(&pd, protocol.CodeSessionLost, "gateway "+b.name+" no longer holds the session")
			return
		}
		if !refusal {
			p.confirm(s, b)
		}
	}
	p.deliver(&pd, code, raw)
}

// reroute sends a kept stateful frame again, to the session's next owner.
func (p *Proxy) reroute(pd pending) {
	var f protocol.Frame
	if protocol.Decode(pd.kept.b, &f) != nil {
		p.fail(&pd, protocol.CodeInternal, "kept frame does not decode")
		return
	}
	var scratch []int
	p.routeStateful(pd, f.Module, pd.kept.b, &scratch)
}

// callback routes a gateway's CALLBACK to the client connection of its
// session; with no such client the gateway's call gets UNAVAILABLE.
func (p *Proxy) callback(u *upstream, f *protocol.Frame, raw []byte) {
	if s := p.sessions.lookup(f.Session); s != nil {
		if d := s.client.Load().get(); d != nil && d.forwardCallback(u, f.CallID, raw) {
			p.stats.callbacks.Add(1)
			return
		}
	}
	p.stats.callbacksDropped.Add(1)
	_ = u.pc.Send(&protocol.Frame{Type: protocol.TypeError, CallID: f.CallID, Session: f.Session,
		Body: protocol.AppendErrorBody(nil, protocol.CodeUnavailable, "the session has no client connection", "")})
}

// event routes a gateway's EVENT to the client connection of its session,
// or drops it (counted). A topic EVENT goes to the topic's subscribers.
func (p *Proxy) event(f *protocol.Frame, raw []byte) {
	if f.Session.IsZero() && string(f.Module) == protocol.TopicModule {
		p.stats.topicDeliveries.Add(int64(p.topics.publish(f.TypeName, raw)))
		return
	}
	if s := p.sessions.lookup(f.Session); s != nil {
		if d := s.client.Load().get(); d != nil {
			if len(raw) > d.peerMax {
				p.stats.eventsDropped.Add(1) // larger than the client accepts
				return
			}
			d.write(nil, raw)
			p.stats.events.Add(1)
			return
		}
	}
	p.stats.eventsDropped.Add(1)
}

// failOrphans settles the calls left in flight on a broken upstream of b.
// dead says the gateway is gone (it refused a new connection, or left the
// pool): stateful calls then fail with SESSION_LOST, and their sessions are
// lost. Idempotent stateless calls are retried elsewhere within the budget;
// other calls may have run, so they fail with UNAVAILABLE.
func (p *Proxy) failOrphans(b *backend, calls map[uint32]pending, dead bool) {
	// Retries first: the budget is a share of the calls in flight, and
	// failing the others first would shrink it.
	for id, pd := range calls {
		if pd.sess == nil && pd.kept != nil && pd.flags.Has(protocol.FlagIdempotent) {
			delete(calls, id)
			p.endRetry(&pd)
			b.outcome(&pd, false, 0)
			p.retryStateless(pd, b)
		}
	}
	for _, pd := range calls {
		b.outcome(&pd, false, 0)
		if pd.sess != nil && dead && pd.sess.ownedBy(b) {
			p.lose(pd.sess, b, anyEpoch, "gateway "+b.name+" died holding the session")
			p.fail(&pd, protocol.CodeSessionLost, "gateway "+b.name+" died holding the session")
			continue
		}
		p.fail(&pd, protocol.CodeUnavailable, "connection to gateway "+b.name+" broke with the call in flight; it may have run")
	}
}

// retryStateless sends a kept idempotent stateless call again, to another
// gateway than from.
func (p *Proxy) retryStateless(pd pending, from *backend) {
	var f protocol.Frame
	if protocol.Decode(pd.kept.b, &f) != nil {
		p.fail(&pd, protocol.CodeInternal, "kept frame does not decode")
		return
	}
	p.routeStateless(pd, f.Module, pd.kept.b, from)
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
		p.stats.sessionsMoved.Add(1)
	}
	s.mu.Unlock()
}
