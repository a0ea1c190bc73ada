// Package gateway is graftlb's embedded gateway: it hosts modules written
// in Go and serves their methods to clients and proxies over the protocol
// in protocol/SPEC.md (TCP with length-prefixed frames, WebSocket on /ws),
// plus an HTTP listener with /status (liveness, as Graftcode's gateway
// has), /readyz (readiness: 503 while draining) and /stats.
//
// # Modules
//
// A Module is registered in Go: Func adds a static method, Type adds a
// stateful type whose constructor ($new) returns a pointer whose exported
// methods become instance methods. Signatures are analysed once, at
// registration; a call decodes its CBOR argument array straight into the
// parameter types. A method may take a context.Context first; InfoFrom
// tells it who it runs for, Emit pushes events to its caller, and a
// Callback parameter calls back into the client.
//
// # Connections and calls
//
// Each connection has one reader goroutine. It decodes frames and admits
// calls (call id, in-flight limit, target, session, object: map lookups
// under short locks) in frame order, then starts each call on a goroutine
// of its own, as Graftcode runs each invocation on its own thread: many
// calls are in flight per connection and answered in any order, and the
// reader never waits on module code. Replies, events and callbacks share
// the connection's batching writer; a peer that stops reading overflows
// its queue and is disconnected without slowing anyone else.
//
// A call's deadline (header, milliseconds) becomes its context's deadline.
// When it passes the gateway answers DEADLINE_EXCEEDED at once, even if the
// module ignores its context, and drops the late result. A panic in module
// code is recovered, logged with its stack, and answered INTERNAL. A call
// counts against the connection's in-flight limit until it is answered, so
// module code that ignores its context past a deadline no longer counts
// (the gateway still waits for it when it stops).
//
// Every call runs through a chain of Interceptors around the method. The
// outermost is the gateway's fault injection (Faults: an error rate and an
// added latency that apply to every module, for tests and demos).
//
// # Sessions
//
// Objects belong to sessions, and sessions to no connection: a client
// that reconnects with HELLO RESUME, or a proxy that carries the session
// on any of its connections, finds them until the session has had no call
// for SessionTTL (checked on the injected clock at every lookup, so expiry
// is exact; a janitor frees the memory). A session is created lazily by
// its first stateful call when the caller declares it new (NEW_SESSION, or
// the connection's own session from a HELLO without RESUME); stateless
// calls never create one. A call for a session the gateway does not hold
// gets SESSION_LOST, or NOT_OWNER on a proxy connection, so that the proxy
// can look for the holder elsewhere (DESIGN.md section 4).
//
// # Drain
//
// Drain sends GOAWAY to every peer, refuses new sessions with DRAINING
// while serving the existing ones and every stateless call, and stops once
// no call has been in flight for DrainQuiet (or at DrainGrace). State and
// OnStateChange let discovery announce it.
//
// # Goroutines
//
// The gateway owns every goroutine it starts: the TCP accept loop, the two
// fasthttp servers, the session janitor, per connection a reader and a
// writer watcher, per call one goroutine. All hold a slot of one WaitGroup;
// Close and Drain end them and wait for them.
package gateway
