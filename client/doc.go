// Package client is the Go client of the graftlb Hypertube protocol
// (protocol/SPEC.md): it dials a gateway or a graftlb proxy over TCP or
// WebSocket, and offers sessions, static and stateless calls, objects,
// callbacks, events and topics, with many calls in flight on one
// connection.
//
// A Conn is one connection. It reads on a goroutine of its own and matches
// replies to calls by call id, so any number of goroutines may call through
// it at once. Sessions are named by their id, not by the connection: one
// connection carries many sessions (NewSession), and a session survives a
// reconnect (ResumeSession on a new Conn, or Options.AutoReconnect) as long
// as its gateway keeps it.
//
// Calls name their method as a string, "module@version.Type.Method", and
// take any Go values as arguments, encoded as CBOR (see the README's Go type
// ↔ CBOR table). The generic helpers Call, CallStatic and CallStateless
// decode the result into a T of your choosing; Session.Call, Object.Call
// and Session.Do return the raw *Result. Malformed names are refused before anything is
// sent (ErrBadTarget).
//
// Events reach the session that a method emitted them to, or, for a topic
// (Session.Subscribe), every subscribed session. Handlers are set per
// session and event name (Session.Handle, Session.OnEvent) or per object
// (Object.OnEvent) and run on the connection's reader goroutine, so they
// must be quick; Session.Events gives a bounded stream for consumers that
// may block, which drops events rather than stall the connection. When a
// proxy learns that a session's gateway died it says so, and the session's
// OnLost handlers run.
//
// Failed calls return an *Error (protocol.Error) carrying the protocol
// code; compare with errors.Is(err, client.ErrSessionLost) and friends. A
// call that was sent but whose connection broke before the reply returns
// ErrConnectionLost: whether it ran is unknown.
package client
