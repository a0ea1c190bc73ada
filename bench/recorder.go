package bench

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// maxLatencyUs is the largest latency the histograms hold (one minute);
// longer calls are recorded as one minute.
const maxLatencyUs = int64(time.Minute / time.Microsecond)

// Codes the bench itself gives to failed calls, besides those of
// client.Code.
const (
	codeBadResult = "BAD_RESULT" // a stateless result that is not what the gateway should compute
	codeMisrouted = "MISROUTED"  // a stateful result that shows another gateway's or session's state
)

// Bucket is one slice of the run's time series: the calls that completed
// in [TMs, TMs+width) after the start, and their latency.
type Bucket struct {
	TMs    int64 `json:"t_ms"`
	OK     int64 `json:"ok"`
	Failed int64 `json:"failed"`
	P50Us  int64 `json:"p50_us"`
	P99Us  int64 `json:"p99_us"`
	MaxUs  int64 `json:"max_us"`
}

// recorder collects the outcome of every call of a run. All methods are
// safe for concurrent use; one mutex guards everything, which costs a
// fraction of a microsecond per call, far below a call's round trip.
type recorder struct {
	// Immutable after newRecorder.
	start  time.Time
	bucket time.Duration

	mu         sync.Mutex
	ok, failed int64
	last       time.Time // latest completion
	hist       *hdrhistogram.Histogram
	errors     map[string]int64
	samples    map[string]string // code → first message
	perGateway map[string]int64
	sessions   Sessions
	// The time series: closed buckets, then the open one (index cur).
	series  []Bucket
	cur     int
	curHist *hdrhistogram.Histogram
	curOK   int64
	curFail int64
}

func newRecorder(start time.Time, bucket time.Duration) *recorder {
	return &recorder{
		start:      start,
		bucket:     bucket,
		last:       start,
		hist:       hdrhistogram.New(1, maxLatencyUs, 3),
		curHist:    hdrhistogram.New(1, maxLatencyUs, 2),
		errors:     make(map[string]int64),
		samples:    make(map[string]string),
		perGateway: make(map[string]int64),
	}
}

// succeed records a successful call that began (or was due, in an open loop)
// at t0 and completed now; gateway is the gateway its result names ("" if
// none).
func (r *recorder) succeed(t0 time.Time, gateway string) { r.record(t0, gateway, "", "") }

// fail records a failed call with its code; the first message of each
// code is kept for the report.
func (r *recorder) fail(t0 time.Time, code, msg string) { r.record(t0, "", code, msg) }

func (r *recorder) record(t0 time.Time, gateway, code, msg string) {
	now := time.Now()
	us := min(max(now.Sub(t0).Microseconds(), 1), maxLatencyUs)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.advanceLocked(now)
	if now.After(r.last) {
		r.last = now
	}
	if code != "" {
		r.failed++
		r.curFail++
		if r.errors[code] == 0 {
			r.samples[code] = msg
		}
		r.errors[code]++
		return
	}
	r.ok++
	r.curOK++
	_ = r.hist.RecordValue(us)
	_ = r.curHist.RecordValue(us)
	if gateway != "" {
		r.perGateway[gateway]++
	}
}

// advanceLocked closes the buckets that ended before now; buckets without
// calls are kept (as zeros), so that a stall shows. Caller holds r.mu.
func (r *recorder) advanceLocked(now time.Time) {
	idx := int(now.Sub(r.start) / r.bucket)
	for r.cur < idx {
		r.series = append(r.series, Bucket{
			TMs:    (time.Duration(r.cur) * r.bucket).Milliseconds(),
			OK:     r.curOK,
			Failed: r.curFail,
			P50Us:  r.curHist.ValueAtQuantile(50),
			P99Us:  r.curHist.ValueAtQuantile(99),
			MaxUs:  r.curHist.Max(),
		})
		r.curHist.Reset()
		r.curOK, r.curFail = 0, 0
		r.cur++
	}
}

// sessionEnded counts a session's outcome.
func (r *recorder) sessionEnded(o outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch o {
	case verified:
		r.sessions.Verified++
	case lost:
		r.sessions.Lost++
	case misrouted:
		r.sessions.Misrouted++
	}
}

// sessionStarted counts a session whose first call is about to be sent.
func (r *recorder) sessionStarted() {
	r.mu.Lock()
	r.sessions.Started++
	r.mu.Unlock()
}

// progress is what the live progress line shows.
type progress struct {
	ok, failed int64
	p99Us      int64
}

func (r *recorder) progress() progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	return progress{ok: r.ok, failed: r.failed, p99Us: r.hist.ValueAtQuantile(99)}
}

// finish closes the time series at end (the last bucket may be partial)
// and fills the report's measurements.
func (r *recorder) finish(end time.Time, rep *Report) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.advanceLocked(end)
	if r.curOK+r.curFail > 0 || len(r.series) == 0 {
		r.series = append(r.series, Bucket{
			TMs: (time.Duration(r.cur) * r.bucket).Milliseconds(), OK: r.curOK, Failed: r.curFail,
			P50Us: r.curHist.ValueAtQuantile(50), P99Us: r.curHist.ValueAtQuantile(99), MaxUs: r.curHist.Max(),
		})
	}
	rep.CallsOK, rep.CallsFailed = r.ok, r.failed
	rep.Errors = make(map[string]int64, len(r.errors))
	for k, v := range r.errors {
		rep.Errors[k] = v
	}
	if len(r.samples) > 0 {
		rep.ErrorSamples = make(map[string]string, len(r.samples))
		for k, v := range r.samples {
			rep.ErrorSamples[k] = v
		}
	}
	rep.PerGateway = make(map[string]int64, len(r.perGateway))
	for k, v := range r.perGateway {
		rep.PerGateway[k] = v
	}
	elapsed := r.last.Sub(r.start)
	rep.DurationS = elapsed.Seconds()
	if elapsed > 0 {
		rep.ThroughputPerS = float64(r.ok) / elapsed.Seconds()
	}
	rep.LatencyUs = Latency{
		P50:  r.hist.ValueAtQuantile(50),
		P90:  r.hist.ValueAtQuantile(90),
		P99:  r.hist.ValueAtQuantile(99),
		P999: r.hist.ValueAtQuantile(99.9),
		Max:  r.hist.Max(),
	}
	rep.Series = append([]Bucket(nil), r.series...)
	rep.BucketMs = r.bucket.Milliseconds()
	s := r.sessions
	rep.sessions = s
}
