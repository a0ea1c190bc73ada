package health

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/graftlb/graftlb/clock"
)

// Many goroutines use a breaker while its clock moves and it trips and
// recovers; at the end every slot is free again.
func TestBreakerConcurrent(t *testing.T) {
	fake := clock.NewFake()
	b, err := NewBreaker("gw1", Settings{Clock: fake, MaxConcurrent: 64, MinCalls: 5})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				tk, err := b.Allow()
				if err != nil {
					continue
				}
				switch (g + i) % 7 {
				case 0:
					b.Cancel(tk)
				case 1, 2, 3:
					b.Done(tk, false)
				default:
					b.Done(tk, true)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 200 {
			fake.Advance(100 * time.Millisecond)
			b.State()
		}
	}()
	wg.Wait()
	if st := b.Status(); st.InFlight != 0 {
		t.Fatalf("slots leaked: %+v", st)
	}
}

// Membership changes race with rounds and the ticker loop.
func TestCheckerConcurrentMembership(t *testing.T) {
	fake := clock.NewFake()
	c, err := NewChecker(CheckerConfig{Clock: fake, OnTransition: func(Transition) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Start()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				name := fmt.Sprintf("gw%d-%d", g, i%5)
				if i%2 == 0 {
					_ = c.Add(name, func(context.Context) error { return nil })
				} else {
					c.Remove(name)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 50 {
			c.Round()
			fake.Advance(time.Second)
		}
	}()
	wg.Wait()
}

// Reports race with sweeps, ejections and membership changes.
func TestDetectorConcurrent(t *testing.T) {
	fake := clock.NewFake()
	d, err := NewDetector(OutlierConfig{Clock: fake, MinRequests: 10, OnEjection: func(Ejection) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.Start()
	var recs []*Recorder
	for i := range 6 {
		r, _ := d.Add(fmt.Sprintf("gw%d", i))
		recs = append(recs, r)
	}
	var wg sync.WaitGroup
	for g, r := range recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				if (i+g)%(g+2) == 0 {
					r.Success()
				} else {
					r.Failure()
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 100 {
			d.Sweep()
			fake.Advance(3 * time.Second)
			if i == 50 {
				d.Remove("gw0")
			}
			for _, name := range d.Targets() {
				d.Status(name)
			}
		}
	}()
	wg.Wait()
	n := 0
	for _, name := range d.Targets() {
		if d.Ejected(name) {
			n++
		}
	}
	if n*100 > len(d.Targets())*50 {
		t.Fatalf("%d of %d ejected", n, len(d.Targets()))
	}
}
