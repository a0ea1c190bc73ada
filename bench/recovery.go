package bench

import "time"

// recoveryLevel is the share of the throughput before an event that counts
// as recovered.
const recoveryLevel = 0.9

// recoverySmoothing is the number of buckets averaged when comparing
// throughput with the level, so that one noisy bucket on a shared machine
// neither makes nor ends a dip.
const recoverySmoothing = 2

// recovery returns the time from an event at ev until throughput, in the
// series of buckets of width w, is back to recoveryLevel of its mean before
// the event: the start of the first bucket, from the event's own on, whose
// (smoothed) throughput reaches the level, or 0 if the event's own bucket
// does. A dip that starts later is not the event's doing and is ignored.
// Only buckets before end (the run's planned end) count, and the first
// bucket is left out of the mean as warm-up when there are others. ok is
// false when throughput had not come back by end (the time returned is then
// up to end).
func recovery(series []Bucket, w, ev, end time.Duration) (ms float64, ok bool) {
	n := min(len(series), int(end/w))
	evIdx := int(ev / w)
	if evIdx <= 0 || evIdx >= n {
		return 0, true
	}
	from := 0
	if evIdx >= 3 {
		from = 1
	}
	var sum float64
	for _, b := range series[from:evIdx] {
		sum += float64(b.OK)
	}
	level := recoveryLevel * sum / float64(evIdx-from)
	for i := evIdx; i < n; i++ {
		k := min(recoverySmoothing, n-i)
		var s float64
		for _, b := range series[i : i+k] {
			s += float64(b.OK)
		}
		if s/float64(k) >= level {
			return msOf(max(0, time.Duration(i)*w-ev)), true
		}
	}
	return msOf(end - ev), false
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
