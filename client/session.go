package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/graftlb/graftlb/protocol"
)

// Session is a session carried by a Conn: the owner of the objects its
// calls create. Its methods are safe for concurrent use.
type Session struct {
	c  *Conn
	id protocol.SessionID
	// fresh is set while the session may not exist on its gateway yet: its
	// stateful calls carry NEW_SESSION until one of them is answered.
	fresh atomic.Bool

	// lost is set once the session is known lost: the error its stateful
	// calls return at once.
	lost atomic.Pointer[protocol.Error]

	mu        sync.Mutex
	callbacks map[uint64]CallbackFunc
	nextRef   uint64
	// Event handlers and streams (events.go).
	byName        map[string]func(Event)
	byObject      map[objectEvent]func(Event)
	streams       []*EventStream
	streamsClosed bool
	onLost        []func(error)
	topics        map[string]struct{} // subscribed, renewed on reconnect
}

func (c *Conn) addSession(id protocol.SessionID, fresh bool) *Session {
	s := &Session{c: c, id: id, callbacks: make(map[uint64]CallbackFunc)}
	s.fresh.Store(fresh)
	c.mu.Lock()
	c.sessions[id] = s
	c.mu.Unlock()
	return s
}

// NewSession starts another session on this connection, with a fresh
// random id.
func (c *Conn) NewSession() *Session { return c.addSession(protocol.NewSessionID(), true) }

// ResumeSession returns a handle on an existing session, for example one
// created over another connection.
func (c *Conn) ResumeSession(id protocol.SessionID) *Session {
	c.mu.Lock()
	s, ok := c.sessions[id]
	c.mu.Unlock()
	if ok {
		return s
	}
	return c.addSession(id, false)
}

// ForgetSession stops routing callbacks and events to s on this connection
// and closes its event streams. The connection's own session is never
// forgotten.
func (c *Conn) ForgetSession(s *Session) {
	c.mu.Lock()
	forget := c.sessions[s.id] == s && s != c.session
	if forget {
		delete(c.sessions, s.id)
	}
	c.mu.Unlock()
	if forget {
		s.closeStreams()
	}
}

func (c *Conn) sessionFor(id protocol.SessionID) *Session {
	if id.IsZero() {
		return c.session
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessions[id]
}

// ID returns the session id.
func (s *Session) ID() protocol.SessionID { return s.id }

// Conn returns the connection the session uses.
func (s *Session) Conn() *Conn { return s.c }

// Request is a call in full; Session.Do sends it.
type Request struct {
	Target protocol.Target
	Object uint64
	Args   []any
	// Stateless lets any gateway serve the call (STATELESS).
	Stateless bool
	// Idempotent lets a proxy retry the call elsewhere (IDEMPOTENT).
	Idempotent bool
	// Oneway sends the call without waiting for a reply (ONEWAY).
	Oneway bool
	// Trace is a W3C traceparent to propagate, or empty.
	Trace string
}

// Do sends r in this session and waits for its result. The context's
// deadline travels in the frame header, and the call gives up at it. A
// malformed target is refused before anything is sent (ErrBadTarget); a
// stateful call of a session known lost fails at once with SESSION_LOST.
func (s *Session) Do(ctx context.Context, r Request) (*Result, error) { return s.do(ctx, r, false) }

// do is Do; local says the call is answered by whoever terminates the
// connection (a proxy or the gateway), never by the session's owner, so
// its answer does not show that the session exists there. A local call
// names the session by its id even for the connection's session.
func (s *Session) do(ctx context.Context, r Request, local bool) (*Result, error) {
	if err := checkTarget(r.Target); err != nil {
		return nil, err
	}
	if !r.Stateless {
		if err := s.lost.Load(); err != nil {
			return nil, err
		}
	}
	body, err := protocol.MarshalArgs(r.Args...)
	if err != nil {
		return nil, protocol.Errorf(protocol.CodeBadArgs, "encode arguments: %v", err)
	}
	f := protocol.Frame{
		Type:     protocol.TypeCall,
		Session:  s.id,
		Object:   r.Object,
		Module:   []byte(r.Target.Module),
		TypeName: []byte(r.Target.Type),
		Method:   []byte(r.Target.Method),
		Trace:    []byte(r.Trace),
		Body:     body,
	}
	if s == s.c.session && !local {
		f.Session = protocol.SessionID{} // the connection's session
	}
	if r.Stateless {
		f.Flags |= protocol.FlagStateless
	}
	if r.Idempotent {
		f.Flags |= protocol.FlagIdempotent
	}
	if r.Oneway {
		f.Flags |= protocol.FlagOneway
	}
	fresh := !r.Stateless && s.fresh.Load()
	if fresh {
		f.Flags |= protocol.FlagNewSession
	}
	rep, err := s.c.roundTrip(ctx, &f)
	if fresh && !local && (err == nil || isAnswered(err)) {
		s.fresh.Store(false)
	}
	if err != nil {
		var pe *protocol.Error
		if !r.Stateless && errors.As(err, &pe) && pe.Code == protocol.CodeSessionLost {
			s.lose(pe)
		}
		return nil, err
	}
	return &Result{Object: rep.object, Body: rep.body}, nil
}

// isAnswered reports whether err is the gateway's answer to a call (so the
// session now exists there), rather than a failure to reach it.
func isAnswered(err error) bool {
	pe, ok := err.(*protocol.Error)
	if !ok {
		return false
	}
	switch pe.Code {
	case protocol.CodeAppException, protocol.CodeBadArgs, protocol.CodeNotFound:
		return true
	}
	return false
}

// Call calls a static method, statefully (it goes to the session's owner):
// target is "module@version.Type.Method".
func (s *Session) Call(ctx context.Context, target string, args ...any) (*Result, error) {
	t, err := parseTarget(target)
	if err != nil {
		return nil, err
	}
	return s.Do(ctx, Request{Target: t, Args: args})
}

// CallStateless calls a static method that any gateway may serve.
func (s *Session) CallStateless(ctx context.Context, target string, args ...any) (*Result, error) {
	t, err := parseTarget(target)
	if err != nil {
		return nil, err
	}
	return s.Do(ctx, Request{Target: t, Args: args, Stateless: true})
}

// New creates an instance of module's type typ in this session; module is
// module@version ("cart@1"). A malformed module or type name is refused
// before anything is sent, with an error wrapping ErrBadTarget.
func (s *Session) New(ctx context.Context, module, typ string, args ...any) (*Object, error) {
	r, err := s.Do(ctx, Request{Target: protocol.Target{Module: module, Type: typ, Method: protocol.MethodNew}, Args: args})
	if err != nil {
		return nil, err
	}
	if r.Object == 0 {
		return nil, protocol.Errorf(protocol.CodeBadFrame, "constructor result carries no object id")
	}
	return s.Object(module, typ, r.Object), nil
}

// Object returns a handle on an existing instance of the session.
func (s *Session) Object(module, typ string, id uint64) *Object {
	return &Object{s: s, module: module, typ: typ, id: id}
}

func parseTarget(target string) (protocol.Target, error) {
	t, err := protocol.ParseTarget(target)
	if err != nil {
		return t, fmt.Errorf("%w %q: %v", ErrBadTarget, target, err)
	}
	return t, nil
}
