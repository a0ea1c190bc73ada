package clock

import (
	"sync"
	"time"
)

// Fake is a Clock that moves only when Advance is called. Tickers and timers
// fire during Advance, in time order, without blocking: a channel send that
// would block is dropped, as with a real ticker whose reader is slow.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*fakeWaiter
}

// NewFake returns a fake clock set to a fixed, arbitrary instant.
func NewFake() *Fake {
	return &Fake{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Advance moves the clock forward by d, firing every ticker and timer that
// comes due on the way.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	end := f.now.Add(d)
	for {
		w := f.nextDueLocked(end)
		if w == nil {
			break
		}
		f.now = w.when
		select {
		case w.ch <- w.when:
		default:
		}
		if w.period > 0 {
			w.when = w.when.Add(w.period)
		} else {
			w.active = false
		}
	}
	f.now = end
	f.mu.Unlock()
}

// Waiters reports how many tickers and timers are armed; tests use it to know
// that the code under test has set its timer before they advance the clock.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, w := range f.waiters {
		if w.active {
			n++
		}
	}
	return n
}

func (f *Fake) nextDueLocked(end time.Time) *fakeWaiter {
	var next *fakeWaiter
	for _, w := range f.waiters {
		if !w.active || w.when.After(end) {
			continue
		}
		if next == nil || w.when.Before(next.when) {
			next = w
		}
	}
	return next
}

// NewTicker implements Clock.
func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive ticker interval")
	}
	return fakeTicker{f.add(d, d)}
}

type fakeTicker struct{ w *fakeWaiter }

func (t fakeTicker) C() <-chan time.Time { return t.w.ch }
func (t fakeTicker) Stop()               { t.w.Stop() }

// NewTimer implements Clock.
func (f *Fake) NewTimer(d time.Duration) Timer { return f.add(d, 0) }

func (f *Fake) add(d, period time.Duration) *fakeWaiter {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := &fakeWaiter{f: f, ch: make(chan time.Time, 1), when: f.now.Add(d), period: period, active: true}
	f.waiters = append(f.waiters, w)
	return w
}

type fakeWaiter struct {
	f      *Fake
	ch     chan time.Time
	period time.Duration
	// guarded by f.mu
	when   time.Time
	active bool
}

func (w *fakeWaiter) C() <-chan time.Time { return w.ch }

func (w *fakeWaiter) Stop() bool {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	was := w.active
	w.active = false
	return was
}

func (w *fakeWaiter) Reset(d time.Duration) {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	w.when = w.f.now.Add(d)
	w.active = true
}
