package health

// Panic mode, with Envoy's semantics
// (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/panic_threshold):
// when fewer than the panic threshold of a pool's targets are healthy, the
// balancer disregards health and spreads calls over every target. Otherwise
// the few healthy targets would take the whole load and likely fall over too,
// while the "unhealthy" ones may be merely slow or wrongly judged. The
// default threshold is 50%; a negative threshold disables panic mode, and then
// a pool with no healthy target has nothing to pick (Envoy's 0%).
//
// Healthy means what the balancer says: in graftlb, up by active checks and
// not ejected. A breaker is admission control, not health, and is left out,
// as Envoy leaves its circuit breakers out of panic mode.

// InPanic reports whether a pool of total targets, healthy of them healthy,
// is in panic mode: total > 0 and healthy < threshold×total. A zero threshold
// means the default 0.5; a negative one never panics.
func InPanic(healthy, total int, threshold float64) bool {
	threshold = panicThreshold(threshold)
	return total > 0 && threshold > 0 && float64(healthy) < threshold*float64(total)
}

func panicThreshold(t float64) float64 {
	if t == 0 {
		return defaultPanicThreshold
	}
	return t
}
