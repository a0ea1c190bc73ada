package balancer

import (
	"math"
	"sync/atomic"
)

// rateLimit admits calls at a sustained rate with bursts, by the generic
// cell rate algorithm (GCRA, as in ATM and in many rate limiters): each
// source keeps one word, its theoretical arrival time (tat), updated by
// compare-and-swap, so that connections of one source never take a lock
// for it. The zero value admits everything.
type rateLimit struct {
	interval  int64 // ns between two calls at the sustained rate; 0: no limit
	tolerance int64 // ns a call may come early: (burst-1) × interval
}

func newRateLimit(rate float64, burst int) rateLimit {
	if rate <= 0 {
		return rateLimit{}
	}
	iv := int64(math.Max(1, math.Round(1e9/rate)))
	return rateLimit{interval: iv, tolerance: int64(max(burst, 1)-1) * iv}
}

// allow reports whether a call at now (unix nanoseconds) fits the limit,
// and counts it if so; tat is its source's word.
func (l rateLimit) allow(tat *atomic.Int64, now int64) bool {
	if l.interval == 0 {
		return true
	}
	for {
		old := tat.Load()
		t := max(old, now)
		if t-now > l.tolerance {
			return false
		}
		if tat.CompareAndSwap(old, t+l.interval) {
			return true
		}
	}
}
