package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/graftlb/graftlb/protocol"
)

// Info describes the call a context belongs to.
type Info struct {
	// Gateway is the name of the gateway running the call.
	Gateway string
	// Session is the call's session (never zero: a zero id in the frame
	// means the connection's session, resolved here).
	Session protocol.SessionID
	// Object is the instance called, 0 for static methods and $new.
	Object uint64
	// Stateless says the call has no session state: it carried STATELESS,
	// or its function was registered with Stateless.
	Stateless bool
	// Proxied says the call came through a graftlb proxy.
	Proxied bool
	// Target is module@version, type and method.
	Target protocol.Target
	// Trace is the W3C traceparent the call carried, or empty.
	Trace string
}

// InfoFrom returns the description of the call ctx belongs to; ok is false
// outside a call.
func InfoFrom(ctx context.Context) (info Info, ok bool) {
	c := callFrom(ctx)
	if c == nil {
		return Info{}, false
	}
	return c.Info(), true
}

// errNoCall is returned by Emit outside a call.
var errNoCall = errors.New("gateway: Emit needs the context of a call")

// Emit pushes an EVENT named event with payload (CBOR-encoded) to the
// session of the call in ctx, on the connection the call came in on; to
// reach other sessions, Publish to a topic they subscribed to. Event names
// are 1 to 255 bytes and must not begin with '$', which the protocol
// reserves ($session_lost).
// Events are queued in order with the call's other frames, so events
// emitted before a method returns reach the client before its RESULT. It
// fails when the connection is closed or its peer does not read (the
// connection is then closed).
func Emit(ctx context.Context, event string, payload any) error {
	c := callFrom(ctx)
	if c == nil {
		return errNoCall
	}
	if err := checkEventName(event); err != nil {
		return err
	}
	body, err := protocol.Marshal(payload)
	if err != nil {
		return fmt.Errorf("gateway: event payload: %w", err)
	}
	obj := c.object
	if c.kind == kindNew {
		obj = 0
	}
	f := protocol.Frame{
		Type:     protocol.TypeEvent,
		Session:  c.session,
		Object:   obj,
		Module:   []byte(c.typ.module),
		TypeName: []byte(c.typ.name),
		Method:   []byte(event),
		Body:     body,
	}
	if f.Size() > c.conn.peerMax {
		return protocol.Errorf(protocol.CodeTooLarge, "event of %d bytes exceeds the peer's max_frame %d", f.Size(), c.conn.peerMax)
	}
	if err := c.conn.pc.Send(&f); err != nil {
		return err
	}
	c.conn.g.metrics.events.Add(1)
	return nil
}
