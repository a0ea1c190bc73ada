package health

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graftlb/graftlb/clock"
)

// EjectReason says which rule ejected a target.
type EjectReason uint8

const (
	// ReasonNone is the reason of a return to service.
	ReasonNone EjectReason = iota
	// ReasonConsecutiveFailures: ConsecutiveFailures failed calls in a row.
	ReasonConsecutiveFailures
	// ReasonFailureRate: the failure rate over an interval exceeded FailureRate.
	ReasonFailureRate
)

func (r EjectReason) String() string {
	switch r {
	case ReasonConsecutiveFailures:
		return "consecutive_failures"
	case ReasonFailureRate:
		return "failure_rate"
	}
	return "none"
}

// MarshalText writes the reason in snake_case.
func (r EjectReason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// Ejection is a target ejected from, or returned to, the pool.
type Ejection struct {
	Target  string
	Ejected bool        // true for an ejection, false for a return
	Reason  EjectReason // ReasonNone for a return
	// Count is the target's ejection count after the event; it sets the
	// length of the next ejection.
	Count int
	// Until is when an ejected target returns, at the first sweep after it;
	// zero for a return.
	Until time.Time
	At    time.Time
}

// Detector is passive outlier detection, after grpc-go's outlierdetection
// balancer (gRFC A50) and Envoy's outlier detection. The data path reports
// each call's outcome on the target's Recorder; the Detector ejects targets
// that fail ConsecutiveFailures calls in a row or more than FailureRate of at
// least MinRequests calls in an Interval, never more than MaxEjectionPercent
// of the pool at once.
//
// Consecutive failures eject at once: the report that reaches the threshold
// wakes the Detector's goroutine (Start), which ejects the target then,
// without waiting for the sweep. Without Start, EjectTripped does the same
// and tests call it. The failure rate is judged by Sweep, every Interval.
//
// The n-th ejection in a row lasts min(n×BaseEjectionTime, MaxEjectionTime),
// and an ejected target returns at the first sweep after that. The count n
// drops by one at every sweep that finds the target in the pool and leaves it
// there (Envoy's decay: a target that behaves for k intervals forgets k
// ejections; gRFC A50 decays the same way).
//
// OnEjection is called by Sweep and EjectTripped on the goroutine running
// them, one event at a time and in order; sweeps never run concurrently. It
// should be quick; it may call Add, Remove, Ejected and Status, but not Sweep,
// EjectTripped or Close. All methods are safe for concurrent use.
type Detector struct {
	// Immutable after NewDetector.
	clk   clock.Clock
	wake  chan struct{}  // capacity 1; a Recorder reaching threshold pokes the loop
	stop  chan struct{}  // closed by Close
	reset chan struct{}  // capacity 1; SetConfig pokes the loop to take a new Interval
	onEj  func(Ejection) // cfg.OnEjection

	// threshold is the consecutive failures that eject (0 when disabled),
	// shared by every Recorder; SetConfig changes it.
	threshold atomic.Uint32

	// sweepMu serialises Sweep and EjectTripped, and so their events.
	sweepMu sync.Mutex

	mu       sync.Mutex
	cfg      OutlierConfig // swapped by SetConfig
	hosts    map[string]*Recorder
	nEjected int
	started  bool
	closed   bool

	wg sync.WaitGroup // the loop
}

// Recorder takes the outcomes of the calls to one target. Its methods use
// atomic operations only: no lock, no allocation. It must not be copied.
type Recorder struct {
	// Written by the data path.
	calls       atomic.Uint64 // successes<<32 | failures since the last sweep
	consecutive atomic.Uint32 // failed calls in a row

	// Immutable after Add.
	name      string
	threshold *atomic.Uint32 // the Detector's
	wake      chan<- struct{}

	// Guarded by Detector.mu.
	ejected   bool
	until     time.Time
	ejections int
	reason    EjectReason
}

// NewDetector returns a Detector with no targets and no goroutine running.
func NewDetector(cfg OutlierConfig) (*Detector, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Detector{
		cfg:   cfg,
		clk:   cfg.Clock,
		wake:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		reset: make(chan struct{}, 1),
		onEj:  cfg.OnEjection,
		hosts: make(map[string]*Recorder),
	}
	d.threshold.Store(thresholdOf(cfg))
	return d, nil
}

func thresholdOf(cfg OutlierConfig) uint32 {
	if cfg.ConsecutiveFailures > 0 {
		return uint32(cfg.ConsecutiveFailures)
	}
	return 0
}

// SetConfig replaces the detector's settings, for a reload: the next
// sweep and the next failure judge by them, and the sweep ticker takes the
// new Interval at once. Ejections in force keep the end they were given;
// the clock and OnEjection stay those given to NewDetector.
func (d *Detector) SetConfig(cfg OutlierConfig) error {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	d.mu.Lock()
	old := d.cfg
	cfg.Clock, cfg.OnEjection = old.Clock, old.OnEjection
	d.cfg = cfg
	d.threshold.Store(thresholdOf(cfg))
	d.mu.Unlock()
	if cfg.Interval != old.Interval {
		select {
		case d.reset <- struct{}{}:
		default:
		}
	}
	return nil
}

// Config returns the detector's current settings.
func (d *Detector) Config() OutlierConfig {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// Success reports a successful call.
func (r *Recorder) Success() {
	r.calls.Add(1 << 32)
	if r.consecutive.Load() != 0 { // skip the store, and the cache-line write, in the common case
		r.consecutive.Store(0)
	}
}

// Failure reports a failed call: a transport failure, a timeout, or an error
// that the caller blames on the target. The failure that reaches
// ConsecutiveFailures wakes the Detector, with a send that never blocks.
func (r *Recorder) Failure() {
	r.calls.Add(1)
	if n := r.consecutive.Add(1); n == r.threshold.Load() && n != 0 {
		select {
		case r.wake <- struct{}{}:
		default: // a wake-up is already pending; it will see this target too
		}
	}
}

// Name returns the target's name.
func (r *Recorder) Name() string { return r.name }

// Add starts watching a target and returns the Recorder its calls report to.
func (d *Detector) Add(name string) (*Recorder, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	if _, ok := d.hosts[name]; ok {
		return nil, fmt.Errorf("health: target %q already added", name)
	}
	r := &Recorder{name: name, threshold: &d.threshold, wake: d.wake}
	d.hosts[name] = r
	return r, nil
}

// Remove stops watching a target and reports whether it was there. Its
// ejection, if any, ends without an event. Reports to its Recorder are
// ignored from then on.
func (d *Detector) Remove(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.hosts[name]
	if !ok {
		return false
	}
	delete(d.hosts, name)
	if r.ejected {
		d.nEjected--
	}
	return true
}

// Start runs Sweep every Interval, and EjectTripped whenever a target reaches
// ConsecutiveFailures, on a goroutine of the Detector's own, until Close. It
// does nothing if already started or closed.
func (d *Detector) Start() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started || d.closed {
		return
	}
	d.started = true
	d.wg.Add(1)
	go d.run()
}

func (d *Detector) run() {
	defer d.wg.Done()
	tk := d.clk.NewTicker(d.Config().Interval)
	defer func() { tk.Stop() }()
	for {
		select {
		case <-d.stop:
			return
		case <-tk.C():
			d.Sweep()
		case <-d.wake:
			d.EjectTripped()
		case <-d.reset:
			tk.Stop()
			tk = d.clk.NewTicker(d.Config().Interval)
		}
	}
}

// Close stops the loop started by Start and waits for it to end.
func (d *Detector) Close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	close(d.stop)
	d.mu.Unlock()
	d.wg.Wait()
}

// EjectTripped ejects, within MaxEjectionPercent, the targets whose
// consecutive failures have reached ConsecutiveFailures.
func (d *Detector) EjectTripped() {
	d.sweepMu.Lock()
	defer d.sweepMu.Unlock()
	now := d.clk.Now()
	d.mu.Lock()
	hosts := d.sortedLocked()
	var cands []candidate
	for _, r := range hosts {
		if d.trippedLocked(r) {
			cands = append(cands, candidate{r: r, reason: ReasonConsecutiveFailures})
		}
	}
	events := d.ejectLocked(cands, now, nil)
	d.mu.Unlock()
	d.deliver(events)
}

// Sweep is the interval algorithm. In order, it
//  1. takes each target's call counts for the interval and starts the next;
//  2. returns the ejected targets whose time is up;
//  3. ejects, within MaxEjectionPercent, the targets that tripped
//     ConsecutiveFailures, then those whose failure rate over at least
//     MinRequests calls exceeds FailureRate, worst first; a target that
//     was ejected when the sweep began is not judged, since its counts come
//     from a time it took no new calls;
//  4. decrements the ejection count of every target that was in the pool
//     when the sweep began and still is.
//
// Returning before ejecting lets a new ejection use the room a return makes.
func (d *Detector) Sweep() {
	d.sweepMu.Lock()
	defer d.sweepMu.Unlock()
	now := d.clk.Now()
	d.mu.Lock()
	hosts := d.sortedLocked()
	wasEjected := make([]bool, len(hosts))
	var events []Ejection
	var cands []candidate
	for i, r := range hosts {
		calls := r.calls.Swap(0)
		wasEjected[i] = r.ejected
		if r.ejected {
			if !now.Before(r.until) {
				r.ejected, r.until, r.reason = false, time.Time{}, ReasonNone
				r.consecutive.Store(0) // failures of calls still in flight at the ejection do not count
				d.nEjected--
				events = append(events, Ejection{Target: r.name, Count: r.ejections, At: now})
			}
			continue
		}
		if d.trippedLocked(r) {
			cands = append(cands, candidate{r: r, reason: ReasonConsecutiveFailures, rate: 2})
			continue
		}
		ok, failed := calls>>32, calls&(1<<32-1)
		if d.cfg.FailureRate < 0 || ok+failed < uint64(d.cfg.MinRequests) {
			continue
		}
		if rate := float64(failed) / float64(ok+failed); rate > d.cfg.FailureRate {
			cands = append(cands, candidate{r: r, reason: ReasonFailureRate, rate: rate})
		}
	}
	// Worst first, so that when MaxEjectionPercent leaves room for only some,
	// it is those; consecutive trips sort before any rate.
	slices.SortStableFunc(cands, func(a, b candidate) int {
		switch {
		case a.rate > b.rate:
			return -1
		case a.rate < b.rate:
			return 1
		}
		return 0
	})
	events = d.ejectLocked(cands, now, events)
	for i, r := range hosts {
		if !wasEjected[i] && !r.ejected && r.ejections > 0 {
			r.ejections--
		}
	}
	d.mu.Unlock()
	d.deliver(events)
}

type candidate struct {
	r      *Recorder
	reason EjectReason
	rate   float64 // failure rate; 2 for a consecutive trip
}

// trippedLocked reports whether r has reached ConsecutiveFailures. For an
// ejected target it clears the count instead. Caller must hold d.mu.
func (d *Detector) trippedLocked(r *Recorder) bool {
	if th := d.threshold.Load(); th == 0 || r.consecutive.Load() < th {
		return false
	}
	if r.ejected {
		r.consecutive.Store(0)
		return false
	}
	return true
}

// ejectLocked ejects the candidates in order while MaxEjectionPercent allows,
// appending the events to events. Caller must hold d.mu.
func (d *Detector) ejectLocked(cands []candidate, now time.Time, events []Ejection) []Ejection {
	for _, c := range cands {
		if !d.roomLocked() {
			break
		}
		r := c.r
		r.ejections++
		r.ejected, r.reason = true, c.reason
		r.until = now.Add(d.ejectionTime(r.ejections))
		r.consecutive.Store(0)
		d.nEjected++
		events = append(events, Ejection{Target: r.name, Ejected: true, Reason: c.reason, Count: r.ejections, Until: r.until, At: now})
	}
	return events
}

// roomLocked reports whether one more target may be ejected: Envoy's rule,
// the ejected share after the ejection is at most MaxEjectionPercent. Caller
// must hold d.mu.
func (d *Detector) roomLocked() bool {
	if d.cfg.AlwaysEjectOne && d.nEjected == 0 && len(d.hosts) > 0 {
		return true
	}
	return (d.nEjected+1)*100 <= len(d.hosts)*d.cfg.MaxEjectionPercent
}

// ejectionTime is the length of the n-th ejection in a row.
func (d *Detector) ejectionTime(n int) time.Duration {
	base, limit := d.cfg.BaseEjectionTime, d.cfg.MaxEjectionTime
	if base <= 0 || n > int(limit/base) {
		return limit
	}
	return base * time.Duration(n)
}

// sortedLocked returns the targets sorted by name, so that sweeps and their
// events are deterministic. Caller must hold d.mu.
func (d *Detector) sortedLocked() []*Recorder {
	hosts := make([]*Recorder, 0, len(d.hosts))
	for _, r := range d.hosts {
		hosts = append(hosts, r)
	}
	slices.SortFunc(hosts, func(a, b *Recorder) int { return strings.Compare(a.name, b.name) })
	return hosts
}

func (d *Detector) deliver(events []Ejection) {
	if d.onEj == nil {
		return
	}
	for _, e := range events {
		d.onEj(e)
	}
}

// Ejected reports whether a target is ejected now.
func (d *Detector) Ejected(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.hosts[name]
	return ok && r.ejected
}

// Targets returns the names of the watched targets, sorted.
func (d *Detector) Targets() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	names := make([]string, 0, len(d.hosts))
	for name := range d.hosts {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Status returns a copy of a target's outlier state, and false if it is not
// watched.
func (d *Detector) Status(name string) (OutlierStatus, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.hosts[name]
	if !ok {
		return OutlierStatus{}, false
	}
	calls := r.calls.Load()
	return OutlierStatus{
		Ejected:             r.ejected,
		Reason:              r.reason,
		EjectedUntil:        r.until,
		Ejections:           r.ejections,
		ConsecutiveFailures: int(r.consecutive.Load()),
		Successes:           int(calls >> 32),
		Failures:            int(calls & (1<<32 - 1)),
	}, true
}
