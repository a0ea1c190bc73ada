package gateway

import (
	"context"
	"time"

	"github.com/graftlb/graftlb/protocol"
)

// awaitMove waits until the move of the call's session ends (bounded by
// the call's deadline and the gateway's stop), then binds the call as
// admission would have: to the session if it stayed, to a relay or ERROR
// MOVED if it moved.
func (c *Call) awaitMove(ctx context.Context) *protocol.Error {
	g := c.conn.g
	for wait := c.moveWait; wait != nil; {
		select {
		case <-wait:
		case <-ctx.Done():
			return protocol.Errorf(protocol.CodeDeadlineExceeded, "deadline of %dms passed while the session moved", c.deadline)
		case <-g.stop:
			return errShuttingDown
		}
		c.moveWait = nil
		fd := g.sessions.acquire(c.session, false, true, c.conn.proxy)
		if fd.err != nil {
			return fd.err
		}
		if perr := c.conn.bindSession(c, fd); perr != nil {
			return perr
		}
		wait = c.moveWait // moving again: another attempt began
	}
	return nil
}

// runRelay passes a proxy's call for a session that moved to the gateway
// that holds it now, under a call id of the link, and answers the proxy
// with that gateway's RESULT or ERROR under the original call id. The
// proxy is told again where the session is (MOVED) first.
func (c *Call) runRelay(ctx context.Context) {
	g := c.conn.g
	c.conn.sendMoved(c.session, c.relay)
	g.callsRelayed.Add(1)
	info := c.Info()
	f := protocol.Frame{Type: protocol.TypeCall, Flags: c.flags, Session: c.session, Object: c.object,
		Module: []byte(info.Target.Module), TypeName: []byte(info.Target.Type), Method: []byte(info.Target.Method),
		Trace: []byte(c.trace), Body: c.args}
	if dl, ok := ctx.Deadline(); ok {
		f.Deadline = uint32(max(time.Until(dl)/time.Millisecond, 1))
	}
	l, err := g.link(ctx, c.relay)
	var r protocol.Frame
	if err == nil {
		r, err = l.call(ctx, &f, c.conn)
	}
	if err != nil {
		if ctx.Err() != nil {
			return // the deadline was answered, or the connection ended
		}
		c.replyError(protocol.Errorf(protocol.CodeUnavailable,
			"relaying the call to gateway %s, which holds the session now, failed (it may have run): %v", c.relay.Name, err))
		return
	}
	code := protocol.Code(0)
	if r.Type == protocol.TypeError {
		code = protocol.ErrorFromBody(r.Body).Code
	}
	if !c.end(code) {
		return
	}
	r.CallID, r.Session = c.id, c.sessionHdr
	if r.Type != protocol.TypeResult && r.Type != protocol.TypeError {
		return
	}
	_ = c.conn.pc.Send(&r)
}

// admitAdopt checks an Adopt CALL of $handoff@1 on the reader goroutine
// and starts it. Only a peer gateway's link may send it (HELLO with PROXY
// and client protocol.HandoffClient): not a client, not a proxy, which
// forwards its clients' calls.
func (c *conn) admitAdopt(f *protocol.Frame, answered, full bool) {
	call := &Call{conn: c, id: f.CallID, flags: f.Flags, sessionHdr: f.Session, session: f.Session,
		object: f.Object, deadline: f.Deadline, kind: kindAdopt, typ: handoffType}
	var perr *protocol.Error
	switch {
	case !c.handoff:
		perr = protocol.Errorf(protocol.CodeNotFound, "%s is spoken between gateways only", protocol.HandoffModule)
	case string(f.TypeName) != protocol.HandoffType || string(f.Method) != protocol.HandoffAdopt:
		perr = protocol.Errorf(protocol.CodeNotFound, "%s has no method %s.%s", protocol.HandoffModule, f.TypeName, f.Method)
	case f.Session.IsZero():
		perr = protocol.Errorf(protocol.CodeBadArgs, "adopt: the session id must not be zero")
	case f.Object != 0:
		perr = protocol.Errorf(protocol.CodeBadArgs, "adopt: object id must be 0, got %d", f.Object)
	case f.Flags.Has(protocol.FlagStateless):
		perr = protocol.Errorf(protocol.CodeBadArgs, "adopt cannot be STATELESS")
	case full:
		perr = protocol.Errorf(protocol.CodeOverloaded, "more than %d calls in flight on this connection", c.g.cfg.Limits.MaxInflight)
	}
	if perr != nil {
		c.refuse(call, f, perr)
		return
	}
	call.args = clone(f.Body)
	c.start(call, answered)
}

// handoffType stands for $handoff@1.Session in the calls that adopt.
var handoffType = &typeDesc{module: protocol.HandoffModule, name: protocol.HandoffType}

var errAdoptBody = protocol.Errorf(protocol.CodeBadArgs,
	`adopt takes one argument, a map {"objects": [{"id": uint, "type": text, "state": bytes}, ...], "next_object": uint}`)

// adopt creates the session that another gateway hands over, with the
// objects of the call's body under their ids. The session is new here: a
// session this gateway holds already is BAD_ARGS.
func (g *Gateway) adopt(c *Call) error {
	if g.draining() {
		return errDrainingSession
	}
	var bodies []adoptBody
	if err := protocol.Unmarshal(c.args, &bodies); err != nil || len(bodies) != 1 {
		return errAdoptBody
	}
	objs, perr := g.reg.restoreObjects(&bodies[0])
	if perr != nil {
		return perr
	}
	if !g.sessions.adopt(c.session, objs, bodies[0].NextObject) {
		return protocol.Errorf(protocol.CodeBadArgs, "adopt: this gateway holds session %s already", c.session)
	}
	g.sessionsAdopted.Add(1)
	c.conn.log.Debug().Str("session", c.session.String()).Int("objects", len(objs)).Msg("handoff: session adopted")
	return nil
}
