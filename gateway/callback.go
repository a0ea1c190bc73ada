package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/graftlb/graftlb/protocol"
)

// Callback is a function the client passed as an argument (a CBOR tag
// 61000 reference). A method receives it by declaring a parameter of type
// Callback; Invoke calls it on the client over the connection the call came
// in on (through a proxy, the proxy routes it by session id).
type Callback struct {
	ref  protocol.CallbackRef
	call *Call
}

// Ref returns the reference the client chose for the function.
func (cb Callback) Ref() protocol.CallbackRef { return cb.ref }

// errCallbackConnClosed answers callbacks whose connection ended.
var errCallbackConnClosed = &protocol.Error{Code: protocol.CodeUnavailable, Message: "connection closed before the callback returned"}

// Invoke calls the client's function with args and waits for its
// CALLBACK_RESULT (the returned CBOR value) or ERROR (a *protocol.Error),
// until ctx ends or the connection closes. Returning the error from the
// method passes the client's failure on to the caller with its code.
func (cb Callback) Invoke(ctx context.Context, args ...any) (protocol.RawValue, error) {
	if cb.call == nil {
		return nil, errors.New("gateway: Invoke on a zero Callback")
	}
	body, err := protocol.MarshalArgs(args...)
	if err != nil {
		return nil, fmt.Errorf("gateway: callback arguments: %w", err)
	}
	c := cb.call.conn
	id, ch, ok := c.addCallback()
	if !ok {
		return nil, errCallbackConnClosed
	}
	defer c.removeCallback(id)
	f := protocol.Frame{
		Type:     protocol.TypeCallback,
		CallID:   id,
		Session:  cb.call.session,
		Object:   uint64(cb.ref),
		Module:   []byte(cb.call.typ.module),
		TypeName: []byte(cb.call.typ.name),
		Method:   []byte(cb.call.Info().Target.Method),
		Body:     body,
	}
	if dl, ok := ctx.Deadline(); ok {
		f.Deadline = uint32(max(time.Until(dl)/time.Millisecond, 1))
	}
	if f.Size() > c.peerMax {
		return nil, protocol.Errorf(protocol.CodeTooLarge, "callback of %d bytes exceeds the peer's max_frame %d", f.Size(), c.peerMax)
	}
	if err := c.pc.Send(&f); err != nil {
		return nil, errCallbackConnClosed
	}
	c.g.metrics.callbacks.Add(1)
	select {
	case r := <-ch:
		return r.value, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.ctx.Done():
		return nil, errCallbackConnClosed
	}
}

// callbackReply is what the client answered to a CALLBACK.
type callbackReply struct {
	value protocol.RawValue
	err   error
}

// addCallback reserves a callback call id, unique among the connection's
// callbacks in flight (SPEC section 4).
func (c *conn) addCallback() (uint32, chan callbackReply, bool) {
	ch := make(chan callbackReply, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil {
		return 0, nil, false
	}
	if c.callbacks == nil {
		c.callbacks = map[uint32]chan callbackReply{}
	}
	for {
		c.nextCallback++
		if _, busy := c.callbacks[c.nextCallback]; c.nextCallback != 0 && !busy {
			break
		}
	}
	c.callbacks[c.nextCallback] = ch
	return c.nextCallback, ch, true
}

func (c *conn) removeCallback(id uint32) {
	c.mu.Lock()
	delete(c.callbacks, id)
	c.mu.Unlock()
}

// deliverCallback hands the client's answer to the waiting Invoke. An
// answer nobody waits for (it came after a timeout) is dropped.
func (c *conn) deliverCallback(id uint32, r callbackReply) {
	c.mu.Lock()
	ch := c.callbacks[id]
	delete(c.callbacks, id)
	c.mu.Unlock()
	if ch == nil {
		c.log.Debug().Uint32("callback", id).Msg("answer to no callback in flight dropped")
		return
	}
	ch <- r // buffered, and each id is delivered once
}
