package gateway

import (
	"github.com/rs/zerolog"

	"github.com/graftlb/graftlb/protocol"
)

// admit checks a CALL on the reader goroutine (call id, in-flight limit,
// target, session, object) and starts it on a goroutine of its own. The
// checks are map lookups under short locks, so the reader never waits on
// module code; doing them here, in frame order, also makes pipelined calls
// deterministic (a NEW_SESSION call creates the session before the next
// frame is read).
func (c *conn) admit(f *protocol.Frame) (ending, bool) {
	answered := c.answers(f.Flags, f.CallID)
	c.mu.Lock()
	_, dup := c.calls[f.CallID]
	full := c.inflight >= c.g.cfg.Limits.MaxInflight
	c.mu.Unlock()
	if dup && answered {
		// SPEC section 5: a protocol error that ends the connection.
		c.sendError(0, protocol.SessionID{}, 0, protocol.Errorf(protocol.CodeBadFrame, "call id %d reused while in flight", f.CallID))
		return ending{level: zerolog.WarnLevel, msg: "call id reused while in flight", linger: true}, true
	}
	if string(f.Module) == protocol.HandoffModule {
		// Another gateway hands over a session (handoff.go).
		c.admitAdopt(f, answered, full)
		return ending{}, false
	}
	if len(f.Module) > 0 && f.Module[0] == '$' {
		// Reserved modules ($topic@1) are the gateway's own, answered here.
		c.topicCall(f)
		return ending{}, false
	}
	call := &Call{
		conn:       c,
		id:         f.CallID,
		flags:      f.Flags,
		sessionHdr: f.Session,
		object:     f.Object,
		deadline:   f.Deadline,
	}
	if full {
		c.refuse(call, f, protocol.Errorf(protocol.CodeOverloaded, "more than %d calls in flight on this connection", c.g.cfg.Limits.MaxInflight))
		return ending{}, false
	}
	if perr := c.resolve(call, f); perr != nil {
		c.refuse(call, f, perr)
		return ending{}, false
	}
	call.args = clone(f.Body)
	if len(f.Trace) > 0 {
		call.trace = string(f.Trace)
	}
	c.start(call, answered)
	return ending{}, false
}

// start counts an admitted call in flight and runs it on a goroutine of
// its own. Only the reader goroutine calls it.
func (c *conn) start(call *Call, answered bool) {
	c.mu.Lock()
	if answered {
		c.calls[call.id] = call
	}
	c.inflight++
	c.mu.Unlock()
	c.g.callStarted()
	c.g.wg.Add(1) // the reader holds a slot, so this Add is safe
	go call.run()
}

// resolve finds what a CALL names: type, method, session and object.
func (c *conn) resolve(call *Call, f *protocol.Frame) *protocol.Error {
	t, perr := c.g.reg.lookupType(f.Module, f.TypeName)
	if perr != nil {
		return perr
	}
	call.typ = t
	stateless := f.Flags.Has(protocol.FlagStateless)
	name := f.Method
	switch {
	case string(name) == protocol.MethodNew:
		switch {
		case t.ctor == nil:
			return protocol.Errorf(protocol.CodeNotFound, "%s.%s has no constructor", t.module, t.name)
		case stateless:
			return protocol.Errorf(protocol.CodeBadArgs, "$new cannot be STATELESS: objects belong to a session")
		case f.Object != 0:
			return protocol.Errorf(protocol.CodeBadArgs, "$new takes object id 0, got %d", f.Object)
		}
		call.kind, call.m = kindNew, t.ctor
	case string(name) == protocol.MethodRelease:
		switch {
		case t.ctor == nil:
			return protocol.Errorf(protocol.CodeNotFound, "%s.%s has no instances", t.module, t.name)
		case stateless:
			return protocol.Errorf(protocol.CodeBadArgs, "$release cannot be STATELESS: objects belong to a session")
		}
		call.kind = kindRelease
	case len(name) > 0 && name[0] == '$':
		return protocol.Errorf(protocol.CodeNotFound, "%q is a reserved method name", name)
	case f.Object == 0:
		m := t.static[string(name)]
		if m == nil {
			return protocol.Errorf(protocol.CodeNotFound, "%s.%s has no static method %q", t.module, t.name, name)
		}
		call.kind, call.m = kindStatic, m
		// A function declared Stateless is served as if the flag were set.
		stateless = stateless || m.stateless
	default:
		if stateless {
			return protocol.Errorf(protocol.CodeBadArgs, "instance calls cannot be STATELESS: objects belong to a session")
		}
		m := t.instance[string(name)]
		if m == nil {
			return protocol.Errorf(protocol.CodeNotFound, "%s.%s has no instance method %q", t.module, t.name, name)
		}
		call.kind, call.m = kindInstance, m
	}

	call.session = f.Session
	if call.session.IsZero() {
		call.session = c.session
	}
	if stateless {
		// Stateless calls need no session state; the id still routes
		// their callbacks and events.
		call.stateless = true
		return nil
	}
	own := call.session == c.session
	create := f.Flags.Has(protocol.FlagNewSession) || (own && c.ownNew)
	fd := c.g.sessions.acquire(call.session, create, c.g.draining(), c.proxy)
	if fd.err != nil {
		return fd.err
	}
	if own {
		// Created or found: from now on a lost own session is lost.
		c.ownNew = false
	}
	return c.bindSession(call, fd)
}

// bindSession completes a stateful call's admission with what acquire
// found: the session and object, or the move to wait for, or the gateway
// the session moved to (relayed for a proxy, MOVED for a direct client).
// It runs on the reader goroutine, or on the call's after a wait.
func (c *conn) bindSession(call *Call, fd found) *protocol.Error {
	switch {
	case fd.moving != nil:
		call.moveWait = fd.moving
		return nil
	case fd.moved != nil:
		if !c.proxy {
			return c.movedError(fd.moved)
		}
		call.relay = fd.moved
		return nil
	}
	s := fd.s
	call.sess = s
	if call.kind == kindInstance || call.kind == kindRelease {
		obj := s.object(call.object)
		if obj == nil || obj.typ != call.typ {
			c.g.sessions.release(s)
			call.sess = nil
			return protocol.Errorf(protocol.CodeNotFound, "session has no %s.%s object %d", call.typ.module, call.typ.name, call.object)
		}
		call.obj = obj
	}
	return nil
}

// answers reports whether a call with these flags and id gets a RESULT or
// ERROR: every call but a ONEWAY one, and a ONEWAY one too when a proxy
// sent it under a non-zero id (SPEC.md section 3), so that the proxy can
// count it against its limits until it ran.
func (c *conn) answers(flags protocol.Flags, id uint32) bool {
	return !flags.Has(protocol.FlagOneway) || (c.proxy && id != 0)
}

// refuse answers a call that was not admitted.
func (c *conn) refuse(call *Call, f *protocol.Frame, e *protocol.Error) {
	c.g.metrics.count(call, e.Code)
	c.logCallError(e, f.Module, f.TypeName, f.Method)
	if c.answers(call.flags, call.id) {
		c.sendError(call.id, call.sessionHdr, call.object, e)
	}
}

// logCallError logs a call's error once, at a level by code: the caller's
// mistakes at info, overload at warn, the normal failures of sessions,
// drains, deadlines and applications at debug.
func (c *conn) logCallError(e *protocol.Error, module, typ, method []byte) {
	lvl := zerolog.DebugLevel
	switch e.Code {
	case protocol.CodeNotFound, protocol.CodeBadArgs:
		lvl = zerolog.InfoLevel
	case protocol.CodeOverloaded:
		lvl = zerolog.WarnLevel
	}
	if ev := c.log.WithLevel(lvl); ev.Enabled() {
		ev.Str("code", e.Code.String()).Str("target", string(module)+"."+string(typ)+"."+string(method)).
			Msg("call failed: " + e.Message)
	}
}
