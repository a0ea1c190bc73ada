// Package gateway is graftlb's embedded gateway: it hosts modules written
// in Go and serves their methods to clients and proxies over the
// Hypertube frame protocol (protocol/SPEC.md: TCP with length-prefixed
// frames, WebSocket on /ws), plus an HTTP listener with /status
// (liveness), /readyz (readiness: 503 while draining) and /stats.
//
// A program hosts its own module in a few lines:
//
//	m := gateway.NewModule("chat", "1").
//		Func("Room", "Version", func() string { return "1.0" }, gateway.Stateless()).
//		Type("Room", newRoom)
//	cfg := gateway.DefaultConfig()
//	cfg.Name, cfg.Modules = "gw1", []*gateway.Module{m}
//	g, err := gateway.New(cfg)
//	// handle err
//	err = g.Start()
//	// ... serve until SIGTERM, then
//	err = g.Drain(ctx)
//
// and joins a gossip pool that graftlb proxies balance over with
// discovery.JoinGateway. Clients call it with the client package, through
// a proxy or directly.
//
// # Modules
//
// A Module is a name and version (module@version) and a set of types,
// registered in Go. Func adds a static method; Type adds a stateful type
// whose constructor ($new) returns a pointer: the methods that *T and T
// declare become instance methods of each object it creates. Methods
// promoted from embedded fields are not remote (embedding sync.Mutex does
// not let a client call Lock); the options Methods and Exclude choose the
// remote methods explicitly. Signatures are analysed once, at
// registration: a method no call could reach is skipped and reported by
// Module.Skipped (New logs it), and mistakes in Func or the options are
// returned by Module.Err and refused by New. A call decodes its CBOR
// argument array straight into the parameter types.
//
// A method may take a context.Context first: InfoFrom tells it which call
// it serves, Emit pushes an event to the calling session, Publish sends an
// event to every session subscribed to a topic, and a Callback parameter
// calls back into the client. Event names beginning with '$' are reserved
// for the protocol.
//
// Errors map to protocol codes as AppError describes. A panic in module
// code is recovered and answered APP_EXCEPTION with the generic message
// "internal error in module@version.Type.Method" (exception type
// PanicType); the panic's value and stack go to the gateway's log only.
//
// # Connections and calls
//
// Each connection has one reader goroutine. It decodes frames and admits
// calls (call id, in-flight limit, target, session, object: map lookups
// under short locks) in frame order, then starts each call on a goroutine
// of its own: many calls are in flight per connection and answered in
// any order, and the reader never waits on module code. Replies, events
// and callbacks share the connection's batching writer; a direct client
// that stops reading overflows its queue and is disconnected without
// slowing anyone else, while a proxy's connection (HELLO with PROXY)
// makes its writers wait for room instead.
//
// A call's deadline (header, milliseconds) becomes its context's deadline.
// When it passes the gateway answers DEADLINE_EXCEEDED at once, even if the
// module ignores its context, and drops the late result. A call counts
// against the connection's in-flight limit until it is answered, so module
// code that ignores its context past a deadline no longer counts (the
// gateway still waits for it when it stops).
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
// the connection's own session from a HELLO without RESUME). Stateless
// calls never create one: calls that carry STATELESS, and every call of a
// function registered with Stateless. A call for a session the gateway
// does not hold gets SESSION_LOST, or NOT_OWNER on a proxy connection, so
// that the proxy can look for the session's holder on another gateway of
// the pool.
//
// # Topics
//
// A session subscribes to a topic with a call of the reserved module
// $topic@1 (Topic.Subscribe, Topic.Unsubscribe); a gateway answers those
// calls for its direct clients, a proxy for its own. Publish delivers an
// event to every subscribed session of the gateway's direct clients and
// sends one topic EVENT to each proxy connected to it (one per proxy
// instance), which delivers it to the sessions subscribed through it.
// Delivery is best effort and at most once.
//
// # Drain
//
// Drain sends GOAWAY to every peer, refuses new sessions with DRAINING
// while serving the existing ones and every stateless call. A gateway that
// knows its pool (SetPool; discovery.JoinGateway sets it from gossip)
// then moves each session it holds, once quiet and movable (the objects'
// types registered with Restore), to the next gateway of the session's
// preference list, gateway to gateway: the receiver acknowledges the
// Adopt call before the sender forgets the session. Proxies are told with
// a MOVED frame; a call that arrives while its session moves waits for the
// move, and one that arrives after it is relayed to the new gateway (from a
// proxy) or answered ERROR MOVED with the new address (a direct client).
// The gateway stops once it holds no session and no call has been in
// flight for DrainQuiet, or at DrainGrace; what it still holds is lost and
// counted. Without a pool nothing moves, and it stops once no call has been
// in flight for DrainQuiet. State, Draining and OnStateChange let discovery
// announce it.
//
// # Goroutines
//
// The gateway owns every goroutine it starts: the TCP accept loop, the two
// fasthttp servers, the session janitor, per connection a reader and a
// writer watcher, per call one goroutine, per handoff link a reader. All
// hold a slot of one WaitGroup; Close and Drain end them and wait for them.
// The workers that move sessions run inside Drain.
package gateway
