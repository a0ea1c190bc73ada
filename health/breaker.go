package health

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graftlb/graftlb/clock"
)

// State is a circuit breaker's state.
type State uint8

const (
	// Closed: calls pass, and their outcomes fill the rolling window.
	Closed State = iota
	// Open: calls are refused with ErrOpen until OpenTimeout has passed.
	Open
	// HalfOpen: up to HalfOpenMax probe calls at a time pass; HalfOpenSuccesses
	// successes close the breaker, one failure opens it again.
	HalfOpen
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "unknown"
}

// MarshalText writes the state as String does.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

var (
	// ErrOpen refuses a call because the breaker is open, or half-open with
	// all its probe calls in flight. The balancer answers CIRCUIT_OPEN.
	ErrOpen = errors.New("health: circuit open")
	// ErrTooMany refuses a call because MaxConcurrent is reached.
	ErrTooMany = errors.New("health: too many calls")
)

// Ticket is a call admitted by a Breaker. It carries the generation it was
// admitted in: the outcome of a call admitted before the latest transition
// frees its slot but changes no state, so a slow call that began before the
// breaker tripped cannot close it. The zero Ticket is no call; Done and
// Cancel ignore it.
type Ticket struct {
	gen uint64
}

// Breaker is a circuit breaker for one target, after sony/gobreaker and
// Envoy's circuit breakers, with a two-step API that allocates nothing:
//
//	t, err := br.Allow()
//	if err != nil { ... refuse the call ... }
//	ok := send(call)
//	br.Done(t, ok)
//
// Every admitted ticket must end with exactly one Done or Cancel.
//
// Transitions are lazy: they are worked out from the clock by Allow, Done,
// State and Status, and no timer or goroutine runs. Closed → Open when, on a
// failure, the window holds at least MinCalls calls of which more than
// FailureRate failed; Open → HalfOpen once OpenTimeout has passed;
// HalfOpen → Closed after HalfOpenSuccesses successes; HalfOpen → Open on a
// failure. Each transition starts a new generation.
//
// The cap MaxConcurrent is checked with an atomic counter and may be
// overshot by a few calls under a race, as Envoy's caps are. While closed,
// Allow and Cancel take no lock, and neither does Done for a success: it is
// an atomic add to the window's current bucket. The lock is taken only to
// start a new bucket (once per Window/Buckets), for a failure (which may
// trip the breaker) and while open or half-open: the steady path of a
// healthy target shares no lock between its callers. All methods are safe
// for concurrent use.
type Breaker struct {
	// Immutable after NewBreaker.
	name     string
	clk      clock.Clock
	onChange func(name string, from, to State) // Settings.OnStateChange
	start    time.Time                         // origin of the offsets below, so that they are monotonic
	width    time.Duration                     // of a window bucket

	// Written under mu, read without it by Allow and Done.
	genState  atomic.Uint64 // generation<<2 | State
	openUntil atomic.Int64  // offset from start at which Open ends

	// Admitted calls not yet done, changed without the lock, and their cap
	// (Settings.MaxConcurrent).
	inFlight    atomic.Int64
	maxInFlight atomic.Int64

	// The window, a ring: epoch e (a Window/Buckets slice of time) is
	// counted in buckets[e%len] once that bucket's epoch is e. Successes
	// are added without the lock; a bucket is reset for a new epoch, and
	// failures are added, under mu.
	buckets []bucket

	mu      sync.Mutex
	s       Settings // SetSettings changes it; Window and Buckets stay
	gen     uint64
	state   State
	probes  int // half-open calls of this generation in flight
	probeOK int // their successes
}

// bucket counts the outcomes of one epoch of the window. A success that
// races with the bucket's reset for a later epoch may be counted in it: the
// caller would have been stalled for a whole window, and one call more or
// less in a window of MinCalls or more changes no decision that matters.
type bucket struct {
	epoch      atomic.Int64
	ok, failed atomic.Int64
}

// NewBreaker returns a closed breaker; name is passed to OnStateChange.
func NewBreaker(name string, s Settings) (*Breaker, error) {
	s = s.WithDefaults()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	b := &Breaker{
		name:     name,
		s:        s,
		onChange: s.OnStateChange,
		clk:      s.Clock,
		start:    s.Clock.Now(),
		width:    s.Window / time.Duration(s.Buckets),
		gen:      1, // generation 0 is the zero Ticket's
		buckets:  make([]bucket, s.Buckets),
	}
	b.genState.Store(b.gen<<2 | uint64(Closed))
	b.maxInFlight.Store(int64(s.MaxConcurrent))
	return b, nil
}

// SetSettings changes the breaker's thresholds, for a reload:
// MaxConcurrent, FailureRate, MinCalls, OpenTimeout, HalfOpenMax and
// HalfOpenSuccesses apply from the next call on (an open breaker keeps the
// end it was given). The window's shape (Window, Buckets), the clock and
// OnStateChange stay those given to NewBreaker, and so do the state and
// the calls counted.
func (b *Breaker) SetSettings(s Settings) error {
	s = s.WithDefaults()
	if err := s.Validate(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s.Window, s.Buckets, s.Clock, s.OnStateChange = b.s.Window, b.s.Buckets, b.s.Clock, b.s.OnStateChange
	b.s = s
	b.maxInFlight.Store(int64(s.MaxConcurrent))
	return nil
}

// Settings returns the breaker's current settings.
func (b *Breaker) Settings() Settings {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.s
}

// Name returns the name given to NewBreaker.
func (b *Breaker) Name() string { return b.name }

// Allow admits a call, or refuses it with ErrOpen or ErrTooMany.
func (b *Breaker) Allow() (Ticket, error) {
	gs := b.genState.Load()
	switch State(gs & 3) {
	case Closed:
		if !b.reserve() {
			return Ticket{}, ErrTooMany
		}
		return Ticket{gen: gs >> 2}, nil
	case Open:
		if b.now() < b.openUntil.Load() {
			return Ticket{}, ErrOpen
		}
	}
	return b.admitSlow()
}

// admitSlow admits a call while open or half-open, under the lock.
func (b *Breaker) admitSlow() (Ticket, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advanceLocked(b.now())
	switch b.state {
	case Closed:
		if !b.reserve() {
			return Ticket{}, ErrTooMany
		}
	case HalfOpen:
		if b.probes >= b.s.HalfOpenMax {
			return Ticket{}, ErrOpen
		}
		if !b.reserve() {
			return Ticket{}, ErrTooMany
		}
		b.probes++
	default:
		return Ticket{}, ErrOpen
	}
	return Ticket{gen: b.gen}, nil
}

// reserve takes a slot under MaxConcurrent.
func (b *Breaker) reserve() bool {
	if b.inFlight.Add(1) > b.maxInFlight.Load() {
		b.inFlight.Add(-1)
		return false
	}
	return true
}

func (b *Breaker) release() { b.inFlight.Add(-1) }

// Done ends a call with its outcome: ok is false for a failure the target is
// to blame for (transport failure, timeout, server error).
func (b *Breaker) Done(t Ticket, ok bool) {
	if t.gen == 0 {
		return
	}
	b.release()
	gs := b.genState.Load()
	if t.gen != gs>>2 {
		return // stale: admitted before the latest transition
	}
	now := b.now()
	if ok && State(gs&3) == Closed {
		b.countSuccess(now) // the steady path: no lock
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if t.gen != b.gen {
		return
	}
	switch b.state {
	case Closed:
		if ok {
			b.countSuccess(now)
			return
		}
		b.bucketLocked(now).failed.Add(1)
		if b.trippedLocked(now) {
			b.setStateLocked(Open, now)
		}
	case HalfOpen:
		b.probes--
		if !ok {
			b.setStateLocked(Open, now)
			return
		}
		b.probeOK++
		if b.probeOK >= b.s.HalfOpenSuccesses {
			b.setStateLocked(Closed, now)
		}
	}
}

// Cancel ends a call without an outcome, for a call that was given up for
// reasons the target is not to blame for (the client went away, or it never
// reached the target). It frees the call's slot, and a half-open probe slot.
func (b *Breaker) Cancel(t Ticket) {
	if t.gen == 0 {
		return
	}
	b.release()
	if gs := b.genState.Load(); t.gen != gs>>2 || State(gs&3) != HalfOpen {
		return
	}
	b.mu.Lock()
	if t.gen == b.gen && b.state == HalfOpen {
		b.probes--
	}
	b.mu.Unlock()
}

// State returns the state now, after any transition due by the clock.
func (b *Breaker) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advanceLocked(b.now())
	return b.state
}

// Status returns a copy of the breaker's state and counts.
func (b *Breaker) Status() BreakerStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.advanceLocked(now)
	s := BreakerStatus{
		State:      b.state,
		Generation: b.gen,
		InFlight:   int(b.inFlight.Load()),
	}
	switch b.state {
	case Closed:
		ok, failed := b.window(now)
		s.WindowSuccesses, s.WindowFailures = int(ok), int(failed)
	case Open:
		s.OpenUntil = b.start.Add(time.Duration(b.openUntil.Load()))
	case HalfOpen:
		s.Probes, s.ProbeSuccesses = b.probes, b.probeOK
	}
	return s
}

// now is the time as an offset from start.
func (b *Breaker) now() int64 { return int64(b.clk.Now().Sub(b.start)) }

// advanceLocked makes the time-driven transition Open → HalfOpen if it is
// due. Caller must hold b.mu.
func (b *Breaker) advanceLocked(now int64) {
	if b.state == Open && now >= b.openUntil.Load() {
		b.setStateLocked(HalfOpen, now)
	}
}

// setStateLocked moves to a new state and generation. Caller must hold b.mu.
func (b *Breaker) setStateLocked(to State, now int64) {
	from := b.state
	b.state = to
	b.gen++
	switch to {
	case Open:
		b.openUntil.Store(now + int64(b.s.OpenTimeout)) // before genState: Allow reads them in the other order
	case HalfOpen:
		b.probes, b.probeOK = 0, 0
	case Closed:
		for i := range b.buckets {
			b.buckets[i].ok.Store(0)
			b.buckets[i].failed.Store(0)
		}
	}
	b.genState.Store(b.gen<<2 | uint64(to))
	if b.onChange != nil {
		b.onChange(b.name, from, to)
	}
}

// countSuccess adds a success to the window's current bucket, taking the
// lock only when the bucket must first be reset for the current epoch.
func (b *Breaker) countSuccess(now int64) {
	e := now / int64(b.width)
	bk := &b.buckets[e%int64(len(b.buckets))]
	if ep := bk.epoch.Load(); ep != e {
		if ep > e {
			return // stale by a whole window: dropped
		}
		b.mu.Lock()
		bk = b.bucketLocked(now)
		b.mu.Unlock()
	}
	bk.ok.Add(1)
}

// bucketLocked returns the bucket of now's epoch, reset first when it still
// holds an older epoch's counts. Caller must hold b.mu.
func (b *Breaker) bucketLocked(now int64) *bucket {
	e := now / int64(b.width)
	bk := &b.buckets[e%int64(len(b.buckets))]
	if bk.epoch.Load() < e {
		bk.ok.Store(0)
		bk.failed.Store(0)
		bk.epoch.Store(e) // after the reset: a reader that sees e counts into a clean bucket
	}
	return bk
}

// window returns the successes and failures of the buckets whose epoch is
// in the window: the current one and the Buckets-1 before it.
func (b *Breaker) window(now int64) (ok, failed int64) {
	e := now / int64(b.width)
	n := int64(len(b.buckets))
	for i := range b.buckets {
		bk := &b.buckets[i]
		if ep := bk.epoch.Load(); ep <= e && ep > e-n {
			ok += bk.ok.Load()
			failed += bk.failed.Load()
		}
	}
	return ok, failed
}

// trippedLocked reports whether the window calls for opening. Caller must
// hold b.mu.
func (b *Breaker) trippedLocked(now int64) bool {
	ok, failed := b.window(now)
	total := ok + failed
	return total >= int64(b.s.MinCalls) && float64(failed) > b.s.FailureRate*float64(total)
}
