// Package transport carries invocations to gateways through a messaging
// system instead of the proxy's own gateway connections, by configuration
// and without a change to clients: the proxy's route table
// (module[.Type.Method]=direct|nats:queue|nats:fanout|nats:durable) sends a
// stateless call either down the direct path (the proxy's pool, the
// default) or to the NATS transport, and gateways that subscribe to NATS
// execute it with the same frames, errors and deadlines as directly.
// GRAFTCODE.md section 5 describes Graftcode's own transport plugins
// (request/reply with a correlation id and a reply address, prefetch 1,
// ack after processing); this is that shape on NATS.
//
// The modes, each specified in protocol/TRANSPORT.md:
//
//   - queue: request/reply over a queue group per module@version; exactly
//     one subscribed gateway runs the call. No subscriber is NATS's
//     no-responders status, answered UNAVAILABLE at once.
//   - fanout: every subscribed gateway gets the call; a ONEWAY call is
//     fire-and-forget, any other gathers the answers of every gateway that
//     answered before the deadline into one RESULT (a CBOR list).
//   - durable: the call is stored in a JetStream work-queue stream before
//     the client hears that it was accepted, and runs once a gateway takes
//     it; IDEMPOTENT calls are acked after they ran (at least once: a
//     gateway killed while running one leaves it to another), others when
//     they start (at most once). A CALL flagged NOT_BEFORE is scheduled by
//     nats-server's message schedules (ADR-51) and runs then.
//
// The package holds both sides: NATS (the proxy's Transport), Subscriber
// (a gateway's side, executing over a Link: a protocol connection to the
// gateway, in process or over TCP) and Embedded (an in-process nats-server
// with JetStream, so that nothing has to be installed).
package transport
