//go:build !race

package health

import (
	"testing"

	"github.com/graftlb/graftlb/clock"
)

// The data path's calls into this package allocate nothing. (The race
// detector allocates, hence the build tag.)
func TestZeroAllocs(t *testing.T) {
	d, err := NewDetector(OutlierConfig{Clock: clock.NewFake()})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := d.Add("gw1")
	b, err := NewBreaker("gw1", Settings{})
	if err != nil {
		t.Fatal(err)
	}
	open, err := NewBreaker("gw2", Settings{Clock: clock.NewFake()})
	if err != nil {
		t.Fatal(err)
	}
	for range 30 {
		tk, _ := open.Allow()
		open.Done(tk, false)
	}
	if open.State() != Open {
		t.Fatal("setup: breaker not open")
	}
	pool := []int{1, 2, 3, 4, 5, 6}
	dst := make([]int, 0, len(pool))

	tests := []struct {
		name string
		f    func()
	}{
		{"Recorder.Success", r.Success},
		{"Recorder.Failure", r.Failure}, // crosses the threshold and pokes the detector on the way
		{"Breaker.Allow/Done", func() {
			tk, _ := b.Allow()
			b.Done(tk, true)
		}},
		{"Breaker.Allow/Done failure", func() {
			tk, _ := b.Allow()
			b.Done(tk, false)
		}},
		{"Breaker.AllowPending/Start/Done", func() {
			tk, _ := b.AllowPending()
			tk = b.Start(tk)
			b.Done(tk, true)
		}},
		{"Breaker.Allow/Cancel", func() {
			tk, _ := b.Allow()
			b.Cancel(tk)
		}},
		{"Breaker.Allow while open", func() { _, _ = open.Allow() }},
		{"Eligible", func() { dst, _ = Eligible(dst[:0], pool, func(i int) bool { return i > 4 }, 0) }},
		{"Eligible in panic", func() { dst, _ = Eligible(dst[:0], pool, func(i int) bool { return i > 5 }, 0) }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(1000, tt.f); n != 0 {
			t.Errorf("%s: %v allocs per call, want 0", tt.name, n)
		}
	}
}
