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
// the event. Only buckets before end (the run's planned end) count, and the
// first bucket is left out of the mean as warm-up when there are others.
// It is 0 when throughput never fell below the level; ok is false when it
// had not come back by end (the time returned is then up to end).
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
	smooth := func(i int) float64 {
		k := min(recoverySmoothing, n-i)
		var s float64
		for _, b := range series[i : i+k] {
			s += float64(b.OK)
		}
		return s / float64(k)
	}
	dip := -1
	for i := evIdx; i < n; i++ {
		if smooth(i) < level {
			dip = i
			break
		}
	}
	if dip < 0 {
		return 0, true
	}
	for j := dip + 1; j < n; j++ {
		if smooth(j) >= level {
			return msOf(time.Duration(j)*w - ev), true
		}
	}
	return msOf(end - ev), false
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
