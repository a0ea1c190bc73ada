package gateway

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/graftlb/graftlb/protocol"
)

// Handler executes a call and returns its result (any value CBOR encodes;
// nil for void) or an error (mapped to an ERROR code as AppError says).
type Handler func(ctx context.Context, call *Call) (any, error)

// Interceptor wraps the execution of every call a gateway serves: it may
// act before and after next, replace the result, or fail the call without
// calling next. The gateway's own fault injection (Faults) is one.
// Interceptors run on the call's goroutine; ctx carries the call
// (InfoFrom, Emit work in it).
type Interceptor func(ctx context.Context, call *Call, next Handler) (any, error)

// chain wraps h in ics, the first outermost. Built once, at New.
func chain(ics []Interceptor, h Handler) Handler {
	for i := len(ics) - 1; i >= 0; i-- {
		ic, next := ics[i], h
		h = func(ctx context.Context, c *Call) (any, error) { return ic(ctx, c, next) }
	}
	return h
}

type callKind uint8

const (
	kindStatic callKind = iota
	kindNew
	kindRelease
	kindInstance
	kindAdopt // $handoff@1.Session.Adopt from another gateway
)

// Call is one call being served. Interceptors see it; its accessors are
// safe from any goroutine.
type Call struct {
	// Set by admit on the reader goroutine before the call starts;
	// read-only afterwards.
	conn       *conn
	id         uint32
	flags      protocol.Flags
	sessionHdr protocol.SessionID // as the CALL carried it (echoed in the reply)
	session    protocol.SessionID // resolved: never zero
	object     uint64
	deadline   uint32 // ms
	args       []byte
	trace      string
	stateless  bool // STATELESS, or a function declared Stateless
	kind       callKind
	typ        *typeDesc
	m          *method  // nil for $release
	sess       *session // nil for stateless calls
	obj        *object  // for instance calls and $release
	// moveWait is set when the session was moving at admission: run waits
	// for the move to end and binds the session then. relay is set when
	// the session moved away and the call came from a proxy: run relays
	// it to that gateway.
	moveWait <-chan struct{}
	relay    *PeerInfo

	newObject uint64      // set by execute for $new, read after it returns
	replied   atomic.Bool // the one RESULT or ERROR has been sent (or given up)
}

// Info describes the call.
func (c *Call) Info() Info {
	method := protocol.MethodRelease
	switch {
	case c.kind == kindAdopt:
		method = protocol.HandoffAdopt
	case c.m != nil:
		method = c.m.short
	}
	return Info{
		Gateway:   c.conn.g.cfg.Name,
		Session:   c.session,
		Object:    c.object,
		Stateless: c.stateless,
		Proxied:   c.conn.proxy,
		Target:    protocol.Target{Module: c.typ.module, Type: c.typ.name, Method: method},
		Trace:     c.trace,
	}
}

// Args returns the call's arguments as received: a CBOR array. The slice
// must not be modified.
func (c *Call) Args() protocol.RawValue { return c.args }

// FaultExempt reports whether the method was registered with FaultExempt.
func (c *Call) FaultExempt() bool { return c.m != nil && c.m.faultExempt }

type callKey struct{}

func callFrom(ctx context.Context) *Call {
	c, _ := ctx.Value(callKey{}).(*Call)
	return c
}

// run executes the call on its own goroutine (holding a wg slot) and
// answers it. With a deadline, the answer goes out when the deadline
// passes even if the module ignores ctx; its late result is dropped.
func (c *Call) run() {
	defer c.conn.g.wg.Done()
	var ctx context.Context
	var cancel context.CancelFunc
	if c.deadline > 0 {
		ctx, cancel = context.WithTimeout(c.conn.ctx, time.Duration(c.deadline)*time.Millisecond)
	} else {
		ctx, cancel = context.WithCancel(c.conn.ctx)
	}
	defer cancel()
	ctx = context.WithValue(ctx, callKey{}, c)
	var stop func() bool
	if c.deadline > 0 {
		stop = context.AfterFunc(ctx, func() {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				c.replyError(protocol.Errorf(protocol.CodeDeadlineExceeded, "deadline of %dms passed", c.deadline))
			}
		})
	}
	if c.moveWait != nil {
		if perr := c.awaitMove(ctx); perr != nil {
			if stop != nil {
				stop()
			}
			c.replyError(perr)
			return
		}
	}
	if c.relay != nil {
		c.runRelay(ctx)
		if stop != nil {
			stop()
		}
		return
	}
	var res any
	var err error
	if c.kind == kindAdopt {
		res, err = nil, c.conn.g.adopt(c)
	} else {
		res, err = c.invoke(ctx)
	}
	if stop != nil {
		stop()
	}
	if c.sess != nil {
		c.conn.g.sessions.release(c.sess)
	}
	if c.replied.Load() {
		c.conn.log.Debug().Uint32("call", c.id).Msg("late result dropped: the deadline had been answered")
		return
	}
	if err != nil {
		c.replyError(toWire(err))
		return
	}
	c.replyResult(res)
}

// invoke runs the handler chain. A panic becomes APP_EXCEPTION (exception
// type "panic") with a message that names the method and nothing else:
// the panic's value may hold data the caller must not see. The value and
// the stack go to the gateway's log. With a Workers cap invoke first waits
// for a free worker.
func (c *Call) invoke(ctx context.Context) (res any, err error) {
	if w := c.conn.g.workers; w != nil {
		select {
		case w <- struct{}{}:
			defer func() { <-w }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	defer func() {
		if v := recover(); v != nil {
			t := c.Info().Target.String()
			c.conn.log.Error().Str("target", t).Str("session", c.session.String()).Str("panic", fmt.Sprint(v)).
				Str("stack", string(debug.Stack())).Msg("panic in module code recovered")
			res, err = nil, &protocol.Error{Code: protocol.CodeAppException, Message: "internal error in " + t, Type: PanicType}
		}
	}()
	return c.conn.g.handler(ctx, c)
}

// execute is the innermost Handler: decode the arguments and run the
// method, or create or release an object.
func (g *Gateway) execute(ctx context.Context, c *Call) (any, error) {
	if c.kind == kindRelease {
		if !c.sess.removeObject(c.object) {
			return nil, protocol.Errorf(protocol.CodeNotFound, "object %d already released", c.object)
		}
		return nil, nil
	}
	args, err := c.m.decodeArgs(c.args, c.bindCallback)
	if err != nil {
		return nil, err
	}
	switch c.kind {
	case kindStatic:
		return c.m.invoke(ctx, reflect.Value{}, args)
	case kindInstance:
		return c.m.invoke(ctx, c.obj.v, args)
	}
	res, err := c.m.invoke(ctx, reflect.Value{}, args)
	if err != nil {
		return nil, err
	}
	v := reflect.ValueOf(res)
	if !v.IsValid() || v.IsNil() {
		return nil, protocol.Errorf(protocol.CodeInternal, "constructor of %s.%s returned nil", c.typ.module, c.typ.name)
	}
	c.newObject = c.sess.addObject(c.typ, v)
	return nil, nil
}

func (c *Call) bindCallback(ref protocol.CallbackRef) Callback { return Callback{ref: ref, call: c} }

var errEncodeResult = &protocol.Error{Code: protocol.CodeInternal, Message: "result cannot be encoded as CBOR"}

func (c *Call) replyResult(res any) {
	if c.flags.Has(protocol.FlagOneway) {
		res = nil // a proxy's acknowledgement needs no result
	}
	body, err := protocol.Marshal(res)
	if err != nil {
		c.conn.log.Error().Err(err).Str("target", c.Info().Target.String()).Msg("result cannot be encoded")
		c.replyError(errEncodeResult)
		return
	}
	obj := c.object
	if c.kind == kindNew {
		obj = c.newObject
	}
	f := protocol.Frame{Type: protocol.TypeResult, CallID: c.id, Session: c.sessionHdr, Object: obj, Body: body}
	if f.Size() > c.conn.peerMax {
		c.replyError(protocol.Errorf(protocol.CodeTooLarge, "result of %d bytes exceeds the peer's max_frame %d", f.Size(), c.conn.peerMax))
		return
	}
	if c.end(0) {
		_ = c.conn.pc.Send(&f)
	}
}

func (c *Call) replyError(e *protocol.Error) {
	if !c.end(e.Code) {
		return
	}
	c.conn.logCallError(e, []byte(c.typ.module), []byte(c.typ.name), []byte(c.Info().Target.Method))
	c.conn.sendError(c.id, c.sessionHdr, c.object, e)
}

// end marks the call answered, exactly once, and frees its call id before
// the answer is queued: the peer may reuse the id as soon as it reads it.
// It reports whether the caller should send the answer. code is the
// answer's (0: a RESULT).
func (c *Call) end(code protocol.Code) bool {
	if !c.replied.CompareAndSwap(false, true) {
		return false
	}
	cn := c.conn
	cn.mu.Lock()
	if cn.calls[c.id] == c {
		delete(cn.calls, c.id)
	}
	cn.inflight--
	cn.mu.Unlock()
	cn.g.callEnded()
	cn.g.metrics.count(c, code)
	if ms := cn.g.served[c.typ.module]; ms != nil && c.relay == nil {
		if code != 0 {
			ms.failed.Add(1)
		} else {
			ms.served.Add(1)
		}
	}
	return cn.answers(c.flags, c.id) && !cn.ending.Load()
}
