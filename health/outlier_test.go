package health

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/graftlb/graftlb/clock"
)

// ejections collects OnEjection calls.
type ejections struct {
	mu  sync.Mutex
	got []Ejection
}

func (e *ejections) add(ev Ejection) {
	e.mu.Lock()
	e.got = append(e.got, ev)
	e.mu.Unlock()
}

func (e *ejections) take() []Ejection {
	e.mu.Lock()
	defer e.mu.Unlock()
	got := e.got
	e.got = nil
	return got
}

func newTestDetector(t *testing.T, cfg OutlierConfig, names ...string) (*Detector, *clock.Fake, *ejections, map[string]*Recorder) {
	t.Helper()
	fake := clock.NewFake()
	ev := &ejections{}
	cfg.Clock = fake
	cfg.OnEjection = ev.add
	d, err := NewDetector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	recs := make(map[string]*Recorder)
	for _, name := range names {
		r, err := d.Add(name)
		if err != nil {
			t.Fatal(err)
		}
		recs[name] = r
	}
	return d, fake, ev, recs
}

func report(r *Recorder, ok, failed int) {
	for range ok {
		r.Success()
	}
	for range failed {
		r.Failure()
	}
}

func TestOutlierConsecutiveFailures(t *testing.T) {
	d, fake, ev, recs := newTestDetector(t, OutlierConfig{}, "a", "b", "c", "d")
	a := recs["a"]

	report(a, 0, 4)
	a.Success() // resets the run
	report(a, 0, 4)
	d.EjectTripped()
	if d.Ejected("a") || len(ev.take()) != 0 {
		t.Fatal("ejected after two runs of 4 failures")
	}
	if len(d.wake) != 0 {
		t.Fatal("woken before the threshold")
	}
	a.Failure() // the fifth in a row
	if len(d.wake) != 1 {
		t.Fatal("the fifth failure did not wake the detector")
	}
	d.EjectTripped()
	got := ev.take()
	want := []Ejection{{Target: "a", Ejected: true, Reason: ReasonConsecutiveFailures, Count: 1, Until: fake.Now().Add(30 * time.Second), At: fake.Now()}}
	if !slices.Equal(got, want) {
		t.Fatalf("events %+v, want %+v", got, want)
	}
	if st, _ := d.Status("a"); !st.Ejected || st.ConsecutiveFailures != 0 {
		t.Fatalf("status %+v", st)
	}
}

// With Start, the report that reaches the threshold ejects without any
// sweep or clock movement.
func TestOutlierConsecutiveEjectsAtOnce(t *testing.T) {
	defer goleak.VerifyNone(t)
	fake := clock.NewFake()
	got := make(chan Ejection, 1)
	d, err := NewDetector(OutlierConfig{Clock: fake, OnEjection: func(e Ejection) { got <- e }})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r, _ := d.Add("a")
	d.Add("b")
	d.Start()
	report(r, 0, 5)
	if e := recv(t, got); e.Target != "a" || !e.Ejected || !e.At.Equal(fake.Now()) {
		t.Fatalf("event %+v", e)
	}
	d.Close()
	if fake.Waiters() != 0 {
		t.Fatal("the ticker was not stopped")
	}
}

func TestOutlierFailureRate(t *testing.T) {
	tests := []struct {
		name       string
		ok, failed int
		want       bool
	}{
		{"under the minimum volume", 0, 49, false},
		{"at the minimum volume", 5, 45, true},
		{"at the threshold", 15, 85, false},
		{"over the threshold", 14, 86, true},
		{"healthy", 100, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Consecutive failures off, to judge the rate alone.
			d, _, ev, recs := newTestDetector(t, OutlierConfig{ConsecutiveFailures: -1}, "a", "b")
			report(recs["a"], tt.ok, tt.failed)
			d.EjectTripped()
			if d.Ejected("a") {
				t.Fatal("ejected before the sweep")
			}
			d.Sweep()
			if d.Ejected("a") != tt.want {
				t.Fatalf("ejected = %v, want %v", !tt.want, tt.want)
			}
			if tt.want {
				if e := ev.take(); len(e) != 1 || e[0].Reason != ReasonFailureRate {
					t.Fatalf("events %+v", e)
				}
			}
			d.Sweep() // a new interval: the counts start over
			if st, _ := d.Status("a"); st.Successes != 0 || st.Failures != 0 {
				t.Fatalf("counts not reset by the sweep: %+v", st)
			}
		})
	}
}

// ejectAndReturn trips a by consecutive failures, then sweeps until it
// returns, and gives the ejection's length.
func ejectAndReturn(t *testing.T, d *Detector, fake *clock.Fake, ev *ejections, a *Recorder) time.Duration {
	t.Helper()
	report(a, 0, 5)
	d.EjectTripped()
	e := ev.take()
	if len(e) != 1 || !e[0].Ejected {
		t.Fatalf("no ejection: %+v", e)
	}
	length := e[0].Until.Sub(e[0].At)
	for d.Ejected("a") {
		fake.Advance(10 * time.Second)
		d.Sweep()
	}
	if r := ev.take(); len(r) != 1 || r[0].Ejected || !r[0].At.Equal(e[0].At.Add(length)) {
		t.Fatalf("return %+v after an ejection of %v at %v", r, length, e[0].At)
	}
	return length
}

func TestOutlierEjectionTimeGrowsAndIsCapped(t *testing.T) {
	d, fake, ev, recs := newTestDetector(t, OutlierConfig{BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 100 * time.Second}, "a", "b")
	var got []time.Duration
	for range 5 {
		got = append(got, ejectAndReturn(t, d, fake, ev, recs["a"]))
	}
	want := []time.Duration{30 * time.Second, 60 * time.Second, 90 * time.Second, 100 * time.Second, 100 * time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("ejection lengths %v, want %v", got, want)
	}
}

func TestOutlierEjectionCountDecays(t *testing.T) {
	d, fake, ev, recs := newTestDetector(t, OutlierConfig{}, "a", "b")
	ejectAndReturn(t, d, fake, ev, recs["a"])
	ejectAndReturn(t, d, fake, ev, recs["a"])
	if st, _ := d.Status("a"); st.Ejections != 2 {
		t.Fatalf("ejection count %d, want 2", st.Ejections)
	}
	// Each sweep that finds it in the pool and leaves it there forgets one.
	for _, want := range []int{1, 0, 0} {
		fake.Advance(10 * time.Second)
		d.Sweep()
		if st, _ := d.Status("a"); st.Ejections != want {
			t.Fatalf("ejection count %d, want %d", st.Ejections, want)
		}
	}
	if got := ejectAndReturn(t, d, fake, ev, recs["a"]); got != 30*time.Second {
		t.Fatalf("ejection after decay lasted %v, want the base 30s", got)
	}
}

func TestOutlierMaxEjectionPercent(t *testing.T) {
	tests := []struct {
		hosts, percent int
		always         bool
		want           int
	}{
		{3, 50, false, 1},
		{2, 50, false, 1},
		{4, 50, false, 2},
		{1, 50, false, 0},
		{1, 50, true, 1},
		{9, 10, false, 0},
		{9, 10, true, 1},
		{10, 10, false, 1},
		{10, 10, true, 1},
		{3, 100, false, 3},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d hosts at %d%% always=%v", tt.hosts, tt.percent, tt.always), func(t *testing.T) {
			var names []string
			for i := range tt.hosts {
				names = append(names, fmt.Sprintf("gw%d", i))
			}
			d, _, _, recs := newTestDetector(t, OutlierConfig{MaxEjectionPercent: tt.percent, AlwaysEjectOne: tt.always}, names...)
			for _, r := range recs {
				report(r, 0, 5)
			}
			d.EjectTripped()
			d.Sweep()
			n := 0
			for _, name := range names {
				if d.Ejected(name) {
					n++
				}
			}
			if n != tt.want {
				t.Fatalf("%d ejected, want %d", n, tt.want)
			}
		})
	}
}

// With three targets at 50%, one is ejected; the next takes its place only
// when it returns, and removing a target frees room too.
func TestOutlierEjectionRoomFreed(t *testing.T) {
	d, fake, ev, recs := newTestDetector(t, OutlierConfig{}, "a", "b", "c")
	report(recs["a"], 0, 5)
	report(recs["b"], 0, 5)
	d.EjectTripped()
	if !d.Ejected("a") || d.Ejected("b") {
		t.Fatal("want a ejected, b not")
	}
	ev.take()
	fake.Advance(30 * time.Second)
	d.Sweep() // a returns, b is still tripped and takes the room
	got := ev.take()
	if len(got) != 2 || got[0].Target != "a" || got[0].Ejected || got[1].Target != "b" || !got[1].Ejected {
		t.Fatalf("events %+v", got)
	}
	report(recs["c"], 0, 5)
	d.EjectTripped()
	if d.Ejected("c") {
		t.Fatal("c ejected beyond 50%")
	}
	d.Remove("b")
	d.Remove("b")
	d.EjectTripped()
	if !d.Ejected("c") {
		t.Fatal("c not ejected after b left (1 of 2 is 50%)")
	}
	if got := d.Targets(); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("targets %v", got)
	}
}

func TestOutlierWorstFirst(t *testing.T) {
	d, _, _, recs := newTestDetector(t, OutlierConfig{ConsecutiveFailures: -1}, "a", "b", "c")
	report(recs["a"], 10, 90)
	report(recs["b"], 1, 99)
	report(recs["c"], 0, 0)
	d.Sweep()
	if d.Ejected("a") || !d.Ejected("b") {
		t.Fatal("the worse target was not the one ejected")
	}
}

func TestOutlierFailuresDuringEjection(t *testing.T) {
	d, fake, ev, recs := newTestDetector(t, OutlierConfig{}, "a", "b")
	a := recs["a"]
	report(a, 0, 5)
	d.EjectTripped()
	ev.take()
	// Calls in flight at the ejection fail afterwards: no second ejection,
	// and they do not count against a when it returns.
	report(a, 0, 5)
	d.EjectTripped()
	if st, _ := d.Status("a"); st.Ejections != 1 || st.ConsecutiveFailures != 0 {
		t.Fatalf("status %+v", st)
	}
	report(a, 0, 60)
	fake.Advance(30 * time.Second)
	d.Sweep()
	if d.Ejected("a") {
		t.Fatal("a not returned, or ejected again on counts from its ejection")
	}
}

func TestOutlierAddRemove(t *testing.T) {
	d, _, _, _ := newTestDetector(t, OutlierConfig{}, "a")
	if _, err := d.Add("a"); err == nil {
		t.Fatal("adding a target twice succeeded")
	}
	if _, ok := d.Status("x"); ok {
		t.Fatal("status of an unknown target")
	}
	r, _ := d.Add("b")
	if r.Name() != "b" {
		t.Fatalf("name %q", r.Name())
	}
	d.Close()
	if _, err := d.Add("c"); err == nil {
		t.Fatal("Add after Close succeeded")
	}
}
