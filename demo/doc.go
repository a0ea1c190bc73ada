// Package demo is `graftlb demo`: the one command a newcomer runs to see
// what graftlb does, with numbers from live traffic on this machine.
//
// It starts a proxy and N gateways (default 4) as child processes of its
// own, each on ports the OS picks, joined by gossip encrypted with a key
// made up for the run, and drives traffic through the proxy with the Go
// client while it narrates six steps:
//
//  1. Stateless calls from one client connection spread over every gateway,
//     per call (an L4 balancer would pin the connection to one).
//  2. Stateful carts, one session each, stay on the gateway that owns them:
//     every answer names its gateway and the cart's contents read back
//     exactly.
//  3. A gateway joins: stateless calls and new sessions reach it, while the
//     existing carts stay on their owners with their contents intact.
//  4. A gateway is drained (SIGTERM): it hands its carts over to the next
//     gateways of their preference lists (how many, to whom, from its
//     /stats), they read back exactly there, new sessions go elsewhere, no
//     call fails, and it exits 0 within seconds.
//  5. A gateway is killed (SIGKILL): exactly its sessions get SESSION_LOST,
//     and nothing else notices.
//  6. Calls routed through NATS, beside the main cluster (a NATS server,
//     gateways subscribed to it, a proxy with routes): queue calls spread
//     over the gateways, one fan-out call reaches each of them once.
//
// A summary then tabulates each step (calls, retries, failed calls by
// code, sessions verified/lost/misrouted, each gateway's share) and ends
// with PASS or FAIL. Each step states its expectations as checks; the
// demo passes only if all of them held.
//
// Children are real processes, because that is the honest way to kill a
// gateway, and they are what users run. They never outlive the demo: it
// stops them on every return path (SIGTERM, then SIGKILL after a grace),
// and on Linux they are in their own process group (Ctrl-C reaches only
// the demo, which then stops them in order) with Pdeathsig set, so the
// kernel kills them if the demo itself is killed.
//
// The load is modest on purpose (a few thousand calls per second) so that
// the demo runs beside six processes on two cores: stateless GetOrder calls
// from workers sharing one connection, flagged IDEMPOTENT since they are;
// and shoppers that open a cart session after another ($new, 3 to 6
// AddItem, Total, Items, $release), each answer checked against the
// shopper's own tally. A call answered UNAVAILABLE did not run (the
// proxy's connection to its gateway had just dropped): it is tried again a
// few milliseconds later and counted as retried, not failed.
//
// Exit codes: ExitPass (0) when every step ran and every check held,
// ExitFail (1) when a check failed or the cluster did not start,
// ExitInterrupted (130) when Ctrl-C or SIGTERM ended the demo before its
// last step; the summary of what was measured is printed in every case.
package demo
