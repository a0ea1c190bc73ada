// Package client is the Go client of the graftlb Hypertube protocol
// (protocol/SPEC.md): it dials a gateway or a proxy over TCP or WebSocket,
// and offers sessions, static and stateless calls, objects, callbacks and
// events, with many calls in flight on one connection.
//
// A Conn is one connection. It reads on a goroutine of its own and matches
// replies to calls by call id, so any number of goroutines may call through
// it at once. Sessions are named by their id, not by the connection: one
// connection carries many sessions (NewSession), and a session survives a
// reconnect (Reconnect, or Options.AutoReconnect) as long as its gateway
// keeps it.
//
// Failed calls return a *protocol.Error carrying the protocol code; compare
// with errors.Is(err, protocol.ErrSessionLost) and friends. A call that was
// sent but whose connection broke before the reply returns
// ErrConnectionLost: whether it ran is unknown.
package client
