package transport

import (
	"time"

	"github.com/graftlb/graftlb/protocol"
)

// Transport carries a call to a gateway by some path other than the
// proxy's own gateway connections, and its answer back. The proxy's route
// table says which calls take it (a route decides the transport the way a
// picker decides the gateway); the direct path, the proxy's pool, is the
// default and is not a Transport value: it stays the forwarding path that
// allocates nothing per frame.
//
// Call may be called from many goroutines at once.
type Transport interface {
	// Call sends c and calls reply exactly once, from any goroutine: with
	// the answer frame (a RESULT or ERROR; its call id is meaningless and
	// the caller sets its own), or, for a ONEWAY call, with nil once the
	// call was handed over. reply may be called before Call returns. The
	// transport keeps no reference to c's slices after Call returns.
	Call(c *Call, reply func(answer []byte))
}

// Call is one call a Transport carries.
type Call struct {
	// Mode is how it travels (never Direct).
	Mode Mode
	// Frame is the CALL frame as the client sent it (SPEC.md section 2).
	Frame []byte
	// Module, Type, Method and Flags are the frame's; Session its session.
	Module, Type, Method []byte
	Flags                protocol.Flags
	Session              protocol.SessionID
	ClientID             uint32
	// Deadline is when the call's deadline passes (zero: none).
	Deadline time.Time
	// NotBefore is the earliest time a durable call may run (zero: now);
	// see FlagNotBefore.
	NotBefore time.Time
}

// ErrorFrame returns an ERROR frame answering c with code and msg.
func ErrorFrame(c *Call, code protocol.Code, msg string) []byte {
	return errorFrame(c.Session, code, msg, "")
}

// errorFrame returns an ERROR frame of session with an error body.
func errorFrame(session protocol.SessionID, code protocol.Code, msg, typ string) []byte {
	f := protocol.Frame{Type: protocol.TypeError, Session: session, Body: protocol.AppendErrorBody(nil, code, msg, typ)}
	b, _ := protocol.AppendFrame(nil, &f)
	return b
}

// sessionOf returns the session id of the frame in b (zero when b is
// shorter than a header).
func sessionOf(b []byte) (s protocol.SessionID) {
	if len(b) >= protocol.HeaderSize {
		copy(s[:], b[8:24])
	}
	return s
}

// resultFrame returns a RESULT frame answering c with the CBOR item body.
func resultFrame(c *Call, body []byte) []byte {
	f := protocol.Frame{Type: protocol.TypeResult, Session: c.Session, Body: body}
	b, _ := protocol.AppendFrame(nil, &f)
	return b
}
