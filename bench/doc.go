// Package bench is graftlb's load generator: it drives a target (a graftlb
// proxy, a single gateway, HAProxy, anything that speaks the protocol over
// tcp:// or ws://) with virtual users, measures every call, and writes the
// report of DESIGN.md section 6 as a table, as JSON and as a plot. Its
// scenarios (scaleout, failover, drain, compare, rolling) start and stop
// their own gateway and proxy processes on loopback.
//
// # Workloads
//
// A virtual user makes one call per step. stateless calls
// orders@1.Orders.GetOrder and checks the order against orders.Make;
// stateful builds carts: each session creates a Cart, adds a bounded
// number of items (Config.SessionCalls), reads Items and Total back and
// ends verified, lost (SESSION_LOST, or a failure that left the cart
// unreadable) or misrouted (a call saw another gateway than the one that
// holds the cart, another cart, or no cart), then the user starts a new
// session. A cart may change gateway only when the scenario drained its
// gateway, which hands it over; Config.SessionPause makes carts sit idle
// between calls. Bounded sessions are what let
// a drained gateway finish: its sessions end within a few calls and new
// ones go elsewhere. mixed interleaves the two (Config.Mix stateless). sleep
// calls chaos@1.Chaos.Sleep with a random duration, simulated work that
// keeps the gateways, not the machine's cores, the bottleneck.
//
// # Closed and open loop
//
// In a closed loop (Config.Rate 0) each of the Concurrency users sends its
// next call when the previous one returns, and latency is measured from the
// send. Such a load generator slows down with the system it measures: when
// the target stalls for a second, the users stop sending, and the calls they
// would have sent in that second are never measured. Gil Tene named this
// coordinated omission ("How NOT to Measure Latency", 2013; the wrk2 and
// HdrHistogram READMEs): the stall shows up as a handful of slow calls
// instead of a second's worth.
//
// In an open loop (Config.Rate N) calls are due on a fixed schedule, call
// i at start + i/N, whatever the target does. Users take the next due call
// from a shared counter, wait for its time if it is in the future, and
// measure its latency from the time it was due, not from when it could be
// sent: a stall makes every call due during it late, and the histogram says
// so. Calls still unsent a grace period after the end are counted as
// calls_unsent rather than silently dropped.
//
// Latencies go into HdrHistogram (github.com/HdrHistogram/hdrhistogram-go):
// one histogram for the run, at three significant digits, and one per time
// bucket (Config.Bucket, 250 ms by default) at two, for the plot and for the
// recovery time after an event. Buckets are closed as time moves on, so a
// long run keeps a small summary per bucket, not a histogram.
//
// # Scenarios
//
// RunScenario runs one of scaleout, failover, drain, compare and rolling
// (scenario*.go) with graftlb processes started from Scenario.Binary; each
// listens on port 0 and says where in its "listening" line. Every process a
// scenario starts is killed when it returns, and dies with the bench if the
// bench itself is killed (PR_SET_PDEATHSIG).
package bench
