// Package clock lets code that depends on time run on a fake clock in tests.
//
// Everything in graftlb whose behaviour depends on time (ejection, breakers,
// idle timeouts, session TTLs, active checks) takes a Clock in its Config
// (nil: the wall clock, Real), so that tests, graftlb's and yours, advance
// time explicitly with a Fake instead of sleeping.
package clock

import "time"

// Clock tells the time and makes tickers and timers.
type Clock interface {
	Now() time.Time
	// NewTicker returns a ticker that fires every d; d must be > 0.
	NewTicker(d time.Duration) Ticker
	// NewTimer returns a timer that fires once after d.
	NewTimer(d time.Duration) Timer
}

// Ticker is the part of *time.Ticker that graftlb uses.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// Timer is the part of *time.Timer that graftlb uses.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it stopped it.
	Stop() bool
	// Reset makes the timer fire after d from now.
	Reset(d time.Duration)
}

// Real is the wall clock.
var Real Clock = realClock{}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time { return r.t.C }
func (r realTicker) Stop()               { r.t.Stop() }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time   { return r.t.C }
func (r realTimer) Stop() bool            { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) { r.t.Reset(d) }

// OrReal returns c, or Real when c is nil, so that config structs can leave
// their Clock field unset.
func OrReal(c Clock) Clock {
	if c == nil {
		return Real
	}
	return c
}
