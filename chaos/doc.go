// Package chaos runs random faults against a graftlb cluster it starts
// itself, for as long as asked, and checks the project's guarantees from a
// history of every operation (Jepsen-style, on one machine).
//
// A run starts proxies and gateways as real processes (one gossip pool),
// drives a mixed workload through every proxy — stateless idempotent and
// non-idempotent calls, ONEWAY calls, long-lived carts that pause, callbacks
// and events — and, from a schedule drawn from a seed before the run
// starts, SIGKILLs, SIGSTOPs, drains (SIGTERM) and restarts gateways, kills
// and drains proxies, slows gateways and makes them fail, and joins new
// ones, several at once up to a share of the pool. In network namespaces
// (Config.Net NetNetns: each process in one of its own on a private
// bridge; root) it also cuts a gateway off from one proxy
// (partition-gateway) or from every other process, gossip included
// (isolate-gateway), with nft drop rules in the gateway's namespace, and
// heals the cut; every namespace, link and rule is removed at the end. Every operation is
// recorded (History); Check verifies, after each fault settles and at the
// end:
//
//  1. no misrouted call: every stateful call ran on the gateway that held
//     its session (or the one a drain handed it to), and every cart read
//     back equals exactly the acknowledged operations on it, in order;
//  2. lost means lost for a reason: a session is reported lost only if its
//     owner was killed while it lived, or isolated for 3 s or more (gossip
//     may then declare it dead), or it idled past the session TTL; never
//     for a partition from one proxy;
//  3. stateless calls do not fail while a healthy gateway remains, except
//     non-idempotent calls in flight on a gateway that died or stopped,
//     calls through a proxy that was killed or drained, and calls in flight
//     through a proxy when their gateway was cut off from it;
//  4. callbacks and events reach only their own session's client;
//  5. every process that should have exited did, and none leaked;
//  6. recovery: after each fault, throughput is back to 90% and every
//     proxy's pool shows the truth of the fault's target (a gateway cut
//     off from a proxy is not routed to by it), within a bound.
//
// The same seed gives the same schedule (kinds, targets, times,
// durations), so a violation can be replayed with --seed.
package chaos
