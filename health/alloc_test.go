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
		{"Breaker.Allow/Cancel", func() {
			tk, _ := b.Allow()
			b.Cancel(tk)
		}},
		{"Breaker.Allow while open", func() { _, _ = open.Allow() }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(1000, tt.f); n != 0 {
			t.Errorf("%s: %v allocs per call, want 0", tt.name, n)
		}
	}
}
