// Package bench is graftlb's load generator: it drives a target (a graftlb
// proxy, a single gateway, HAProxy, anything that speaks the protocol over
// tcp:// or ws://) with virtual users, measures every call, and writes the
// report of DESIGN.md section 6 as a table, as JSON and as a plot. Its
// scenarios (scaleout, failover, drain, compare, rolling, soak, transport)
// start and stop their own gateway and proxy processes on loopback.
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
// RunScenario runs one of scaleout, failover, drain, compare, rolling, soak
// and transport (scenario*.go) with graftlb processes started from
// Scenario.Binary; each listens on port 0 and says where in its
// "listening" line. Every process a
// scenario starts is killed when it returns, and dies with the bench if the
// bench itself is killed (PR_SET_PDEATHSIG; nginx's master gets SIGTERM, so
// that it stops its workers).
//
// # Soak
//
// soak (scenario_soak.go) keeps the proxy's session table full for the
// whole run and samples every process (sampler.go): RSS and open fds
// from /proc, goroutines from its Prometheus /metrics. Growth says when a
// series grows without bound: a robust slope over the window must exceed
// a tolerance, and the last third of the window must still be above the
// middle third, so that neither a sawtooth nor a plateau fails it.
//
// # Compare, and how it is kept fair
//
// compare puts graftlb beside the proxies a user would pick instead:
// HAProxy (tcp mode; http mode for WebSocket, which it relays as a tunnel
// after the upgrade) and nginx (the stream module; for WebSocket the HTTP
// proxy with proxy_http_version 1.1 and the Upgrade and Connection
// headers, as nginx's WebSocket page says). The runs are, in this order:
// direct to gw1; each proxy over TCP; each over WebSocket; then each again
// in an open loop, at one offered rate per transport (Scenario.Load.Rate,
// or half the slowest proxy's closed-loop calls/s on that transport), whose
// p99 is the latency through each proxy at the same load, measured from
// when each call was due. For every proxied run the report gives calls/s,
// p50 and p99, the proxy's CPU per call, its RSS, and both per 1,000
// calls/s (vCPU and MB: the unit Istio publishes for Envoy, about 0.20
// vCPU and 60 MB per 1,000 requests/s), and the scenario report gives
// graftlb's figures over each peer's of the same transport and loop
// (Ratio). The rules:
//
//   - Same backends: every run goes to the same gateway processes, started
//     once; direct goes to gw1 alone.
//   - Same cores: no process is pinned, and each proxy may use every core
//     the bench may: graftlb's GOMAXPROCS is Go's default (the cores),
//     HAProxy's nbthread and nginx's worker_processes are set to the same
//     number. That is what each one's docs advise for a machine given to
//     it (nginx: "auto", the number of cores; HAProxy: one thread per CPU
//     it may run on, its default), rather than nginx's 1 worker: on 2 cores a
//     single nginx worker would leave a core to the others. nginx listens
//     with reuseport so that the kernel spreads connections over its
//     workers (without it one worker may take most of them), and shares
//     its upstream state over them (zone).
//   - Each peer tuned as its docs advise for long-lived connections:
//     leastconn (HAProxy) and least_conn (nginx), HAProxy's timeout tunnel
//     for WebSocket, nginx's proxy_read_timeout raised from 60s; no access
//     log in any (graftlb's is off by default).
//   - No circuit breaker in any: graftlb runs with its breaker's failure
//     rate at 1, ejection off and a concurrency cap it cannot reach;
//     HAProxy's servers have no checks and no maxconn; nginx's have
//     max_fails=0.
//   - One fresh proxy process per run, killed after it, so that memory is
//     the run's own; RSS is the highest of samples every 100 ms, summed
//     over the proxy's processes (nginx's master and workers; their shared
//     pages count once per process, which counts nginx high), and CPU is
//     the whole process tree's.
//   - Speed is reported as ratios within one run, never as absolute
//     figures: the machine is shared, and the load generator and the
//     gateways run on the same cores as the proxy.
package bench
