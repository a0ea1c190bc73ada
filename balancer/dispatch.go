package balancer

import (
	"github.com/graftlb/graftlb/protocol"
)

// reply routes a gateway's RESULT or ERROR for upstream call id to the
// client that made the call. A refusal during placement (NOT_OWNER, or
// DRAINING/OVERLOADED for a new session) re-routes the kept frame instead.
func (p *Proxy) reply(u *upstream, id uint32, f *protocol.Frame, raw []byte) {
	c, ok := u.take(id)
	if !ok {
		// Expired at the proxy, or its attempt was abandoned
		// (Config.TryTimeout): the client is answered once, elsewhere.
		p.stats.lateReplies.Add(1)
		return
	}
	c.out = &u.out // this is u's reader
	b := u.b
	b.served.Add(1)
	b.m.received(len(raw))
	c.endRetry()
	code := protocol.Code(0)
	if f.Type == protocol.TypeError {
		code, _, _, _ = protocol.DecodeErrorBody(f.Body)
	}
	c.outcome(!failureCode(code), p.now())
	if c.sess == nil && c.kept != nil && failureCode(code) && code != protocol.CodeDeadlineExceeded && p.mayRetry(&c) {
		// An idempotent call the gateway failed: try another, within the
		// budget and MaxAttempts.
		c.resend(b)
		return
	}
	if s := c.sess; s != nil {
		refusal := code == protocol.CodeNotOwner ||
			(c.flags.Has(protocol.FlagNewSession) && (code == protocol.CodeDraining || code == protocol.CodeOverloaded))
		if refusal && c.kept != nil && s.refused(b, code) {
			if code == protocol.CodeNotOwner {
				p.stats.notOwnerWalks.Add(1)
			}
			c.resend(b)
			return
		}
		if code == protocol.CodeNotOwner {
			// The owner no longer holds the session (its TTL passed): lost.
			p.lose(s, b, anyEpoch, "gateway "+b.name+" no longer holds the session")
			c.fail(protocol.CodeSessionLost, "gateway "+b.name+" no longer holds the session")
			return
		}
		if !refusal {
			s.confirm(b)
		}
	}
	c.deliver(code, raw)
}

// callback routes a gateway's CALLBACK to the client connection of its
// session; with no such client the gateway's call gets UNAVAILABLE.
func (p *Proxy) callback(u *upstream, f *protocol.Frame, raw []byte) {
	if s := p.sessions.lookup(f.Session); s != nil {
		d := s.client.Load().get()
		if d != nil && d.bind != nil {
			protocol.SetSession(raw, s.cid) // the client's id (auth.go)
		}
		if d != nil && d.forwardCallback(u, f.CallID, raw) {
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
			if d.bind != nil {
				protocol.SetSession(raw, s.cid) // the client's id (auth.go)
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
func (p *Proxy) failOrphans(b *backend, calls map[uint32]call, dead bool) {
	// Retries first: the budget is a share of the calls in flight, and
	// failing the others first would shrink it.
	for id, c := range calls {
		if c.sess == nil && c.kept != nil && c.flags.Has(protocol.FlagIdempotent) && p.mayRetry(&c) {
			delete(calls, id)
			c.endRetry()
			c.outcome(false, 0)
			c.resend(b)
		}
	}
	for _, c := range calls {
		c.outcome(false, 0)
		if c.sess != nil && dead && c.sess.ownedBy(b) {
			p.lose(c.sess, b, anyEpoch, "gateway "+b.name+" died holding the session")
			c.fail(protocol.CodeSessionLost, "gateway "+b.name+" died holding the session")
			continue
		}
		c.fail(protocol.CodeUnavailable, "connection to gateway "+b.name+" broke with the call in flight; it may have run")
	}
}

// mayRetry reports whether a stateless call that failed may be sent again:
// it has been sent to fewer than MaxAttempts gateways. Without this bound a
// call that every gateway fails (a deterministic INTERNAL) was retried
// until its deadline, hundreds of thousands of times, and tripped the
// breakers of the whole pool.
func (p *Proxy) mayRetry(c *call) bool { return int(c.attempts) < p.cfg.MaxAttempts }
