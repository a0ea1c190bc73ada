// Package health decides which gateways of a pool may take calls. It is pure
// policy: the balancer supplies the probes, reports call outcomes, and turns
// the decisions into pickers. It has four parts, usable alone or together:
//
//   - Checker, active checks (checker.go). Every Interval each target's Probe
//     runs once, bounded by Timeout; Fall consecutive failures take a target
//     down and Rise consecutive successes bring it up, as HAProxy's rise and
//     fall (https://docs.haproxy.org/2.6/configuration.html#5.2-rise). A
//     target starts "up" by default, with HAProxy's init-state semantics.
//
//   - Detector, passive outlier detection (outlier.go), after grpc-go's
//     outlierdetection balancer and gRFC A50
//     (https://github.com/grpc/proposal/blob/master/A50-xds-outlier-detection.md)
//     and Envoy's outlier detection
//     (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/outlier).
//     The data path reports outcomes on a Recorder with atomic operations
//     only; consecutive failures eject at once, the failure rate at each
//     sweep; ejections grow longer when repeated, are capped, decay when the
//     target behaves, and never take more than MaxEjectionPercent of the pool.
//
//   - Breaker, a circuit breaker per target (breaker.go), after sony/gobreaker
//     (https://github.com/sony/gobreaker): Closed, Open and HalfOpen states, a
//     generation counter that drops stale outcomes, and lazy, clock-driven
//     transitions; plus Envoy's cap on concurrent calls
//     (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/circuit_breaking).
//     Its two-step Allow/Done API takes a value Ticket instead of returning a
//     closure, so that it allocates nothing per call.
//
//   - InPanic, panic mode (panic.go), with Envoy's semantics:
//     below PanicThreshold healthy, spread over the whole pool.
//
// Snapshot (status.go) gathers all of it for the admin API.
//
// Health state flows to the balancer through callbacks (OnTransition,
// OnEjection, OnStateChange), delivered in order and one at a time; the
// balancer rebuilds its picker from them, and pickers never read this
// package's state live. Everything that depends on time takes a
// clock.Clock, and each periodic step is a plain method (Checker.Round,
// Detector.Sweep, Detector.EjectTripped) that Start merely calls on a ticker:
// tests drive them on a fake clock, with no sleeps.
//
// Where this package departs from its sources:
//
//   - Outcome counts are one atomic word per target (successes in the high 32
//     bits, failures in the low 32), read and reset with one Swap by the
//     sweep, instead of grpc-go's pair of buckets behind an atomic pointer:
//     the read is exact, no report is lost to a swap, and nothing is
//     allocated per interval.
//   - Failure-percentage ejection is on by default (Envoy and gRFC A50 leave
//     it off); success-rate (standard deviation) ejection is not offered,
//     since graftlb pools are small for statistics.
//   - A half-open breaker caps the probe calls in flight, not their total,
//     so a cancelled probe cannot leave it half-open for ever; the calls it
//     refuses get ErrOpen, not gobreaker's ErrTooManyRequests, because the
//     target is still suspect, not overloaded.
package health
