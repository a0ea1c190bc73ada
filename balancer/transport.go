package balancer

import (
	"time"

	"github.com/graftlb/graftlb/protocol"
	"github.com/graftlb/graftlb/transport"
)

// viaTransport sends a client's CALL over the transport its route names
// and reports whether it did; false leaves the call to the direct path.
// Only stateless calls are routed: a stateful call's objects live on its
// session's owner, which NATS does not know, so it stays direct whatever
// the routes say. With no routes, and no NOT_BEFORE flag, this is one
// comparison: the direct path stays free of allocations.
//
// The reply settles the call like a gateway's (counted under no gateway:
// NATS chose it), on whatever goroutine the transport answers from.
func (p *Proxy) viaTransport(c *call, f *protocol.Frame, raw []byte) bool {
	notBefore := f.Flags.Has(transport.FlagNotBefore)
	routes := p.conf().Routes
	if routes == nil && !notBefore {
		return false
	}
	mode := transport.Direct
	if f.Flags.Has(protocol.FlagStateless) {
		mode = routes.Lookup(f.Module, f.TypeName, f.Method)
	}
	if notBefore && mode != transport.Durable {
		c.failUnrouted(f.Module, protocol.CodeBadArgs, "NOT_BEFORE is only for stateless calls routed nats:durable")
		return true
	}
	if mode == transport.Direct {
		return false
	}
	var sess protocol.SessionID // as forwarded: the connection's, when the frame said zero
	copy(sess[:], raw[8:24])
	tc := &transport.Call{Mode: mode, Frame: raw, Module: f.Module, Type: f.TypeName, Method: f.Method,
		Flags: f.Flags, Session: sess, ClientID: c.clientID}
	if c.deadline != 0 {
		tc.Deadline = time.Unix(0, c.deadline)
	}
	if notBefore {
		tc.NotBefore = time.UnixMilli(int64(f.Object))
	} else if f.Object != 0 {
		c.failUnrouted(f.Module, protocol.CodeBadArgs, "a stateless call names no object")
		return true
	}
	c.mc = p.metrics.unrouted.module(f.Module)
	settle := *c
	settle.out = nil // answered from the transport's goroutine: written at once, not on this reader's batch
	p.cfg.Transport.Call(tc, func(answer []byte) {
		if answer == nil { // a ONEWAY call handed over
			settle.deliver(0, nil)
			return
		}
		code := protocol.Code(0)
		if t, _, _, _ := protocol.PeekHeader(answer); t == protocol.TypeError {
			var af protocol.Frame
			if protocol.Decode(answer, &af) == nil {
				code, _, _, _ = protocol.DecodeErrorBody(af.Body)
			}
		}
		protocol.SetSession(answer, sess)
		settle.deliver(code, answer)
	})
	return true
}
