package client

import (
	"context"
	"fmt"

	"github.com/graftlb/graftlb/protocol"
)

// CallbackFunc is a client function a gateway may call back while it
// executes a call: args are the CBOR-encoded arguments; the returned value
// is sent back as the CALLBACK_RESULT, an error as an APP_EXCEPTION.
type CallbackFunc func(ctx context.Context, args []protocol.RawValue) (any, error)

// Callback registers fn in the session and returns the reference to pass
// among a call's arguments. Forget it when it is no longer needed.
func (s *Session) Callback(fn CallbackFunc) protocol.CallbackRef {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextRef++
	s.callbacks[s.nextRef] = fn
	return protocol.CallbackRef(s.nextRef)
}

// Forget unregisters a callback.
func (s *Session) Forget(ref protocol.CallbackRef) {
	s.mu.Lock()
	delete(s.callbacks, uint64(ref))
	s.mu.Unlock()
}

func (s *Session) callback(ref uint64) CallbackFunc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.callbacks[ref]
}

// runCallback runs a CALLBACK on a goroutine of its own (the function may
// itself call the gateway) and answers on the connection it came from.
func (c *Conn) runCallback(pc *protocol.Conn, f *protocol.Frame) {
	reply := protocol.Frame{Type: protocol.TypeCallbackResult, CallID: f.CallID, Session: f.Session, Object: f.Object}
	var fn CallbackFunc
	if s := c.sessionFor(f.Session); s != nil {
		fn = s.callback(f.Object)
	}
	if fn == nil {
		reply.Type = protocol.TypeError
		reply.Body = protocol.AppendErrorBody(nil, protocol.CodeNotFound, fmt.Sprintf("no callback %d in this session", f.Object), "")
		_ = pc.Send(&reply)
		return
	}
	var args []protocol.RawValue
	if err := protocol.Unmarshal(f.Body, &args); err != nil {
		reply.Type = protocol.TypeError
		reply.Body = protocol.AppendErrorBody(nil, protocol.CodeBadArgs, "callback arguments: "+err.Error(), "")
		_ = pc.Send(&reply)
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		v, err := fn(c.cbCtx, args)
		if err == nil {
			var body []byte
			if body, err = protocol.Marshal(v); err == nil {
				reply.Body = body
				_ = pc.Send(&reply)
				return
			}
		}
		reply.Type = protocol.TypeError
		reply.Body = protocol.AppendErrorBody(nil, protocol.CodeAppException, err.Error(), fmt.Sprintf("%T", err))
		_ = pc.Send(&reply)
	}()
}
