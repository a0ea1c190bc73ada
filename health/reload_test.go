package health

import (
	"testing"
	"time"
)

// TestCheckerSetConfig: new Rise and Fall judge from the next round on, a
// target keeps its state, and a bad config changes nothing.
func TestCheckerSetConfig(t *testing.T) {
	c, _, tr := newTestChecker(t, CheckerConfig{InitialState: InitFullyUp, Fall: 3})
	s := &script{results: []error{errProbe}}
	if err := c.Add("gw1", s.probe); err != nil {
		t.Fatal(err)
	}
	c.Round()
	if got, _ := c.State("gw1"); got != Up {
		t.Fatalf("one failure of three: %v", got)
	}
	if err := c.SetConfig(CheckerConfig{Fall: -1}); err == nil {
		t.Fatal("a negative fall was taken")
	}
	if err := c.SetConfig(CheckerConfig{Fall: 2, Rise: 1, Interval: 3 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if got := c.Config(); got.Fall != 2 || got.Interval != 3*time.Second || got.OnTransition == nil || got.Clock == nil {
		t.Fatalf("Config() = %+v", got)
	}
	c.Round() // the second failure in a row: down under Fall 2
	if got, _ := c.State("gw1"); got != Down {
		t.Fatalf("two failures under fall 2: %v (%v)", got, tr.list())
	}
	s.set(nil)
	c.Round() // Rise 1
	if got, _ := c.State("gw1"); got != Up {
		t.Fatalf("one success under rise 1: %v", got)
	}
}

// TestDetectorSetConfig: a new ConsecutiveFailures applies to the
// Recorders already handed out.
func TestDetectorSetConfig(t *testing.T) {
	d, _, ej, recs := newTestDetector(t, OutlierConfig{ConsecutiveFailures: 5, MaxEjectionPercent: 100}, "gw1", "gw2")
	if err := d.SetConfig(OutlierConfig{ConsecutiveFailures: 2, MaxEjectionPercent: 100, MaxEjectionTime: time.Second, BaseEjectionTime: 2 * time.Second}); err == nil {
		t.Fatal("max below base was taken")
	}
	if err := d.SetConfig(OutlierConfig{ConsecutiveFailures: 2, MaxEjectionPercent: 100}); err != nil {
		t.Fatal(err)
	}
	recs["gw1"].Failure()
	recs["gw1"].Failure()
	d.EjectTripped()
	if !d.Ejected("gw1") {
		t.Fatalf("two failures under consecutive 2 did not eject (%v)", ej)
	}
	if got := d.Config(); got.ConsecutiveFailures != 2 || got.OnEjection == nil {
		t.Fatalf("Config() = %+v", got)
	}
}

// TestBreakerSetSettings: a new MaxConcurrent and FailureRate apply to
// the next call; the window keeps its shape.
func TestBreakerSetSettings(t *testing.T) {
	b, _, _ := newTestBreaker(t, Settings{MaxConcurrent: 1})
	t1, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Allow(); err != ErrTooMany {
		t.Fatalf("second call under cap 1: %v", err)
	}
	if err := b.SetSettings(Settings{FailureRate: 2}); err == nil {
		t.Fatal("a failure rate of 2 was taken")
	}
	if err := b.SetSettings(Settings{MaxConcurrent: 2, FailureRate: 1, Window: time.Hour}); err != nil {
		t.Fatal(err)
	}
	t2, err := b.Allow()
	if err != nil {
		t.Fatalf("second call under cap 2: %v", err)
	}
	b.Done(t1, true)
	b.Done(t2, true)
	calls(t, b, 0, 30) // failure rate 1 never trips
	if got := b.State(); got != Closed {
		t.Fatalf("state %v under failure rate 1", got)
	}
	if s := b.Settings(); s.Window != defaultWindow || s.MaxConcurrent != 2 {
		t.Fatalf("Settings() = %+v", s)
	}
}
