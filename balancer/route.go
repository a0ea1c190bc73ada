package balancer

import (
	"github.com/graftlb/graftlb/protocol"
)

// This file applies a picker's decision (picker.go) to a call: it takes
// the gateway's breaker ticket and a connection and forwards the call
// (upstream.go), trying the next decision when the frame could not leave,
// and settles the call (call.go) with the error a client should get when
// no gateway takes it.

// routeStateless sends a stateless call to the gateway the snapshot's
// stateless picker chooses.
// A gateway the frame provably did not reach (no connection, or its
// connection closed before the frame left) is skipped and another picked,
// up to MaxAttempts, without drawing on the retry budget: nothing ran. A
// call that comes back for a second attempt (c.attempts > 0: it is
// IDEMPOTENT and its gateway died with it in flight, failed it, or did not
// answer within TryTimeout) draws on the budget; after a try timeout it
// holds that retry already (Proxy.abandonable). Each attempt of an
// IDEMPOTENT call but the last gets a timeout (Proxy.tryBy). skip is a
// gateway to avoid.
func (p *Proxy) routeStateless(c call, module, raw []byte, skip *backend) {
	if c.attempts > 0 && !c.retry && !c.takeRetry() { // one abandoned by TryTimeout holds its retry
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
	for try := 0; try < p.conf().MaxAttempts; try++ {
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
		c.tryBy = p.tryBy(&c, in.now)
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

// tryBy returns when the attempt of stateless call c sent at now times
// out (Config.TryTimeout): only an IDEMPOTENT call that is not ONEWAY and
// has attempts left has such a timeout, and only before its deadline.
func (p *Proxy) tryBy(c *call, now int64) int64 {
	tt := p.conf().TryTimeout
	if tt <= 0 || c.kept == nil || !c.flags.Has(protocol.FlagIdempotent) || c.flags.Has(protocol.FlagOneway) || !p.mayRetry(c) {
		return 0
	}
	by := now + int64(tt)
	if c.deadline != 0 && c.deadline <= by {
		return 0 // its deadline comes first
	}
	return by
}

// routeStateful sends a call of session c.sess to the gateway that holds
// the session, placing the session first if this proxy has not bound it.
// Until a gateway answers one of its calls, the binding is tentative and the
// frame is kept, so that a refusal (DRAINING, OVERLOADED, NOT_OWNER) can
// move it down the preference list.
func (p *Proxy) routeStateful(c call, module, raw []byte, scratch *pickScratch) {
	s := c.sess
	for probe := 0; probe <= p.conf().MaxOwnerProbes; probe++ {
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
		if pl.confirmed && p.picker.Load().fails(b) && !b.draining.Load() {
			// A hung gateway (its checks fail) would hold the call until
			// its deadline: fail it now. A draining one is alive and busy
			// handing its sessions over (its checks may lag under that
			// load): the call goes to it, to run or be relayed. Draining is
			// read live: the gateway's GOAWAY sets it on the upstream
			// reader, and it must hold before the next snapshot does.
			c.failUnrouted(module, protocol.CodeUnavailable, "gateway "+b.name+" holding the session fails its health checks")
			return
		}
		t, refused := b.breaker.Allow()
		if refused != nil {
			if pl.confirmed {
				c.failUnrouted(module, protocol.CodeCircuitOpen, "the circuit breaker of gateway "+b.name+", which holds the session, is open")
				return
			}
			if !s.refused(b, protocol.CodeCircuitOpen) {
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
		if pl.confirmed && b.awaitVerdict(p.conf().DialTimeout) {
			// Its connection just broke: once the redial tells whether the
			// gateway lives, route again (SESSION_LOST if it died).
			continue
		}
		// Not sent: a tentative owner is skipped; a confirmed one is down.
		if pl.confirmed || !s.refused(b, protocol.CodeUnavailable) {
			c.failUnrouted(module, protocol.CodeUnavailable, "gateway "+b.name+" holding the session is unreachable")
			return
		}
	}
	c.failUnrouted(module, protocol.CodeUnavailable, "no gateway took the session")
}
