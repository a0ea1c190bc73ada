package balancer

import (
	"sync/atomic"

	"github.com/graftlb/graftlb/health"
	"github.com/graftlb/graftlb/protocol"
)

// A client call reads one way through this package: decide (picker.go and
// route.go: which gateway takes it), forward (upstream.go: onto one of that
// gateway's connections, where it waits for the answer) and settle (this
// file: the call gives back what it holds and its client gets the answer).

// call is one client call, from its arrival on a client connection until
// it is settled. It is a value, held in the upstream's map while in flight:
// forwarding allocates nothing.
//
// Until it is settled a call holds a slot of its client connection (its
// call id, or its ONEWAY count, and a share of the proxy's active calls),
// a slot of its module's calls in flight when they are capped,
// and may hold a breaker ticket of gateway b, a retry of the budget and a
// kept copy of its frame. Every call ends in exactly one fail or deliver
// (a retry routes it again, and it ends in one of them later), and both
// give everything back in settle: no exit can forget a piece.
type call struct {
	down     *downstream
	clientID uint32
	sess     *session  // the session of a stateful call; nil for stateless
	kept     *frameBuf // a copy of the frame, kept when it may be re-sent
	deadline int64     // unix nanoseconds; 0: none
	// tryBy ends the attempt in flight (Config.TryTimeout), unix
	// nanoseconds; 0: none (the call's last attempt, or one that is not
	// IDEMPOTENT, stateless and answered).
	tryBy  int64
	start  int64    // unix nanoseconds when forwarded, for the latency estimate
	b      *backend // the gateway whose breaker admitted it (ticket); nil: none
	ticket health.Ticket
	mc     *moduleCalls // counts the call when it settles (metrics.go); nil: metrics off
	// mod is its slot of its module's calls in flight (Config.MaxModuleCalls),
	// given back when it settles; nil: no cap.
	mod *atomic.Int64
	acc *accessEntry // its access log line, when it is logged (accesslog.go)
	// out is the batch of the reader goroutine routing the call at the
	// moment (the client's, or the upstream's that answered), which its
	// frame is queued on; nil in the table of calls in flight.
	out *protocol.Batch
	// cid is the session id its reply carries to the client, with
	// credentials (auth.go); unused without.
	cid      protocol.SessionID
	flags    protocol.Flags
	attempts uint8
	retry    bool // holds a retry from the budget
}

// admitted records that gateway b's breaker admitted the call with t, for
// module: the call now counts under b.
func (c *call) admitted(b *backend, t health.Ticket, module []byte) {
	c.b, c.ticket = b, t
	c.mc = b.m.module(module)
}

// unsent gives back the breaker ticket of a call whose frame did not
// reach its gateway, without an outcome: the gateway is not to blame.
func (c *call) unsent() {
	if c.b != nil && c.b.breaker != nil {
		c.b.breaker.Cancel(c.ticket)
	}
	c.ticket = health.Ticket{}
}

// outcome reports how the call's gateway did to its breaker, outlier
// detector and latency estimate, spending the ticket. now is 0 when the
// call got no answer (no latency sample).
func (c *call) outcome(ok bool, now int64) {
	b := c.b
	if b == nil {
		return
	}
	if b.breaker != nil {
		b.breaker.Done(c.ticket, ok)
	}
	c.ticket = health.Ticket{}
	if b.rec != nil {
		if ok {
			b.rec.Success()
		} else {
			b.rec.Failure()
		}
	}
	if c.start != 0 && now > c.start {
		b.observe(now-c.start, now)
		b.m.latency(c, now-c.start)
	}
}

// fail settles a call that no gateway answers: the proxy answers it with
// code and msg (a ONEWAY call gets nothing).
func (c *call) fail(code protocol.Code, msg string) {
	c.settle(code)
	if !c.flags.Has(protocol.FlagOneway) {
		c.down.sendError(c.clientID, code, msg)
	}
}

// failUnrouted is fail for a call that no gateway took: it is counted
// under the module but no gateway. Counters are looked up here, not for
// every call on arrival, so that a routed call looks them up once.
func (c *call) failUnrouted(module []byte, code protocol.Code, msg string) {
	if c.mc == nil {
		c.mc = c.down.p.metrics.unrouted.module(module)
	}
	c.fail(code, msg)
}

// deliver settles a call its gateway answered with code (0: a RESULT),
// passing the reply raw on to the client.
func (c *call) deliver(code protocol.Code, raw []byte) {
	c.settle(code)
	c.down.deliver(c, raw)
}

// settle counts the call under code and gives back what it holds: a
// ticket whose outcome was not reported (cancelled), its retry, its kept
// frame, its slot of its module's calls in flight and its slot on the
// client connection.
func (c *call) settle(code protocol.Code) {
	p := c.down.p
	p.settled(c, code)
	c.unsent()
	c.endRetry()
	c.kept.release()
	c.kept = nil
	if c.mod != nil {
		c.mod.Add(-1)
		c.mod = nil
	}
	c.down.finish(c)
}

// resend routes a call with a kept frame again: a stateless call to
// another gateway than from, a stateful one to its session's next owner.
func (c call) resend(from *backend) {
	var f protocol.Frame
	if protocol.Decode(c.kept.b, &f) != nil {
		c.fail(protocol.CodeInternal, "kept frame does not decode")
		return
	}
	p := c.down.p
	if c.sess == nil {
		p.routeStateless(c, f.Module, c.kept.b, from)
		return
	}
	var scratch pickScratch
	p.routeStateful(c, f.Module, c.kept.b, &scratch)
}

// takeRetry reserves a retry from the proxy's budget: retries in flight
// may not exceed RetryBudget × active calls, with RetryMin as the floor.
func (c *call) takeRetry() bool {
	p := c.down.p
	cfg := p.conf()
	limit := int64(cfg.RetryBudget * float64(p.active.Load()))
	limit = max(limit, int64(cfg.RetryMin))
	if p.retries.Add(1) > limit {
		p.retries.Add(-1)
		p.stats.retriesDenied.Add(1)
		return false
	}
	c.retry = true
	p.stats.retries.Add(1)
	return true
}

// timed reports whether the sweep must look at the call: it has a
// deadline or an attempt timeout.
func (c *call) timed() bool { return c.deadline != 0 || c.tryBy != 0 }

// abandon decides, for the sweep, whether the call's attempt that timed
// out (Config.TryTimeout) is given up for another: it holds a retry of
// the budget for its next attempt from then on (one it held already
// carries over). Refused, it keeps waiting for this attempt
// (Proxy.abandonable).
func (c *call) abandon() bool {
	if c.retry {
		c.down.p.stats.retries.Add(1)
		return true
	}
	return c.takeRetry()
}

// endRetry returns the call's retry to the budget.
func (c *call) endRetry() {
	if c.retry {
		c.retry = false
		c.down.p.retries.Add(-1)
	}
}
