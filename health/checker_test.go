package health

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/graftlb/graftlb/clock"
)

var errProbe = errors.New("probe failed")

// script is a probe that returns its results in order, then keeps returning
// the last one.
type script struct {
	mu      sync.Mutex
	results []error
	calls   int
}

func (s *script) probe(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := min(s.calls, len(s.results)-1)
	s.calls++
	return s.results[i]
}

func (s *script) set(results ...error) {
	s.mu.Lock()
	s.results, s.calls = results, 0
	s.mu.Unlock()
}

// transitions collects OnTransition calls.
type transitions struct {
	mu  sync.Mutex
	got []Transition
}

func (tr *transitions) add(t Transition) {
	tr.mu.Lock()
	tr.got = append(tr.got, t)
	tr.mu.Unlock()
}

func (tr *transitions) list() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []string
	for _, t := range tr.got {
		out = append(out, t.Target+":"+t.From.String()+"->"+t.To.String())
	}
	return out
}

func newTestChecker(t *testing.T, cfg CheckerConfig) (*Checker, *clock.Fake, *transitions) {
	t.Helper()
	fake := clock.NewFake()
	tr := &transitions{}
	cfg.Clock = fake
	cfg.OnTransition = tr.add
	c, err := NewChecker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, fake, tr
}

func TestCheckerRiseFall(t *testing.T) {
	const ok, bad = true, false
	tests := []struct {
		name    string
		initial InitialState
		results []bool
		want    []CheckState // state after each result
	}{
		{"fully-down: 1 success not up, 2 up", InitFullyDown, []bool{ok, ok}, []CheckState{Down, Up}},
		{"fully-up: 2 failures not down, 3 down", InitFullyUp, []bool{bad, bad, bad}, []CheckState{Up, Up, Down}},
		{"fully-up: down then rise 2", InitFullyUp, []bool{bad, bad, bad, ok, ok}, []CheckState{Up, Up, Down, Down, Up}},
		{"a success resets the fall count", InitFullyUp, []bool{bad, bad, ok, bad, bad, bad}, []CheckState{Up, Up, Up, Up, Up, Down}},
		{"a failure resets the rise count", InitFullyDown, []bool{ok, bad, ok, ok}, []CheckState{Down, Down, Down, Up}},
		{"up: the first failure takes it down", InitUp, []bool{bad}, []CheckState{Down}},
		{"up: confirmed by a success, then fall 3", InitUp, []bool{ok, bad, bad, bad}, []CheckState{Up, Up, Up, Down}},
		{"up: down at once, then rise 2", InitUp, []bool{bad, ok, ok}, []CheckState{Down, Down, Up}},
		{"down: the first success brings it up", InitDown, []bool{ok}, []CheckState{Up}},
		{"down: a first failure, then rise 2", InitDown, []bool{bad, ok, ok}, []CheckState{Down, Down, Up}},
		{"down: up at once, then fall 3", InitDown, []bool{ok, bad, bad, bad}, []CheckState{Up, Up, Up, Down}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, _ := newTestChecker(t, CheckerConfig{InitialState: tt.initial})
			var errs []error
			for _, r := range tt.results {
				if r {
					errs = append(errs, nil)
				} else {
					errs = append(errs, errProbe)
				}
			}
			s := &script{results: errs}
			if err := c.Add("gw1", s.probe); err != nil {
				t.Fatal(err)
			}
			for i := range tt.results {
				c.Round()
				if got, _ := c.State("gw1"); got != tt.want[i] {
					t.Fatalf("after result %d: state %v, want %v", i+1, got, tt.want[i])
				}
			}
		})
	}
}

func TestCheckerTransitionsInOrder(t *testing.T) {
	c, fake, tr := newTestChecker(t, CheckerConfig{InitialState: InitFullyUp})
	a := &script{results: []error{errProbe}}
	b := &script{results: []error{nil}}
	if err := c.Add("a", a.probe); err != nil {
		t.Fatal(err)
	}
	if err := c.Add("b", b.probe); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		c.Round()
	}
	a.set(nil)
	b.set(errProbe)
	for range 3 {
		c.Round()
	}
	want := []string{"a:up->down", "a:down->up", "b:up->down"}
	if got := tr.list(); !slices.Equal(got, want) {
		t.Fatalf("transitions %v, want %v", got, want)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if !errors.Is(tr.got[0].Err, errProbe) || tr.got[1].Err != nil {
		t.Fatalf("transition errors %v, %v", tr.got[0].Err, tr.got[1].Err)
	}
	if !tr.got[0].At.Equal(fake.Now()) {
		t.Fatalf("transition at %v, want the fake clock's %v", tr.got[0].At, fake.Now())
	}
}

func TestCheckerProbeTimeout(t *testing.T) {
	c, fake, tr := newTestChecker(t, CheckerConfig{InitialState: InitFullyUp, Fall: 1, Timeout: 2 * time.Second})
	started := make(chan struct{}, 1)
	var ctxErr atomic.Value
	blocking := func(ctx context.Context) error {
		started <- struct{}{}
		<-ctx.Done()
		ctxErr.Store(ctx.Err())
		return nil // a late success must still count as a failure
	}
	if err := c.Add("gw1", blocking); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { c.Round(); close(done) }()
	recv(t, started)
	fake.Advance(time.Second)
	select {
	case <-done:
		t.Fatal("round ended before the timeout")
	default:
	}
	fake.Advance(time.Second)
	recv(t, done)

	if got, _ := c.State("gw1"); got != Down {
		t.Fatalf("state %v after a timed-out probe, want down", got)
	}
	st, _ := c.Status("gw1")
	if st.LastError != ErrProbeTimeout.Error() {
		t.Fatalf("last error %q, want %q", st.LastError, ErrProbeTimeout)
	}
	waitFor(t, "the probe to see its context cancelled", func() bool { return ctxErr.Load() != nil })
	if got := tr.list(); !slices.Equal(got, []string{"gw1:up->down"}) {
		t.Fatalf("transitions %v", got)
	}
}

func TestCheckerProbeIgnoringContext(t *testing.T) {
	c, fake, _ := newTestChecker(t, CheckerConfig{InitialState: InitFullyUp})
	started := make(chan struct{}, 4)
	release := make(chan struct{})
	var calls atomic.Int32
	stubborn := func(context.Context) error {
		calls.Add(1)
		started <- struct{}{}
		<-release
		return nil
	}
	if err := c.Add("gw1", stubborn); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { c.Round(); close(done) }()
	recv(t, started)
	fake.Advance(time.Second)
	recv(t, done)
	st, _ := c.Status("gw1")
	if st.ConsecutiveFailures != 1 || st.LastError != ErrProbeTimeout.Error() || !st.Probing {
		t.Fatalf("after the timeout: %+v", st)
	}

	// The probe is still running: no second probe, one more failure each round.
	c.Round()
	c.Round()
	st, _ = c.Status("gw1")
	if st.ConsecutiveFailures != 3 || st.LastError != ErrProbeStuck.Error() || st.State != Down {
		t.Fatalf("while stuck: %+v", st)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d probes ran while one was stuck, want 1", n)
	}

	close(release)
	waitFor(t, "the stuck probe to return", func() bool { st, _ := c.Status("gw1"); return !st.Probing })
	c.Round()
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d probes after the stuck one returned, want 2", n)
	}
	if st, _ := c.Status("gw1"); st.ConsecutiveSuccesses != 1 {
		t.Fatalf("after release: %+v", st)
	}
}

func TestCheckerProbePanics(t *testing.T) {
	c, _, _ := newTestChecker(t, CheckerConfig{InitialState: InitUp})
	if err := c.Add("gw1", func(context.Context) error { panic("boom") }); err != nil {
		t.Fatal(err)
	}
	c.Round()
	if st, _ := c.Status("gw1"); st.State != Down || st.LastError != "health: probe panicked: boom" {
		t.Fatalf("after a panicking probe: %+v", st)
	}
}

func TestCheckerMembership(t *testing.T) {
	c, _, tr := newTestChecker(t, CheckerConfig{InitialState: InitFullyUp, Fall: 1})
	a := &script{results: []error{nil}}
	b := &script{results: []error{errProbe}}
	if err := c.Add("a", a.probe); err != nil {
		t.Fatal(err)
	}
	if err := c.Add("a", a.probe); err == nil {
		t.Fatal("adding a target twice succeeded")
	}
	if err := c.Add("x", nil); err == nil {
		t.Fatal("adding a nil probe succeeded")
	}
	c.Round()
	if err := c.Add("b", b.probe); err != nil {
		t.Fatal(err)
	}
	c.Round()
	if a.calls != 2 || b.calls != 1 {
		t.Fatalf("probes: a %d, b %d; want 2, 1", a.calls, b.calls)
	}
	if !c.Remove("a") || c.Remove("a") {
		t.Fatal("Remove reported wrongly")
	}
	c.Round()
	if a.calls != 2 || b.calls != 2 {
		t.Fatalf("probes after removing a: a %d, b %d; want 2, 2", a.calls, b.calls)
	}
	if _, ok := c.State("a"); ok {
		t.Fatal("a removed target still has a state")
	}
	if got := c.Targets(); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("targets %v", got)
	}
	if got := tr.list(); !slices.Equal(got, []string{"b:up->down"}) {
		t.Fatalf("transitions %v", got)
	}
	c.Close()
	if err := c.Add("c", a.probe); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Close: %v, want ErrClosed", err)
	}
}

// A probe cancelled by Remove while it runs reports nothing.
func TestCheckerRemoveWhileProbing(t *testing.T) {
	c, _, tr := newTestChecker(t, CheckerConfig{InitialState: InitUp})
	started := make(chan struct{}, 1)
	if err := c.Add("gw1", func(ctx context.Context) error {
		started <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { c.Round(); close(done) }()
	recv(t, started)
	c.Remove("gw1")
	recv(t, done)
	if got := tr.list(); len(got) != 0 {
		t.Fatalf("transitions for a removed target: %v", got)
	}
}

func TestCheckerStartClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	fake := clock.NewFake()
	got := make(chan Transition, 4)
	c, err := NewChecker(CheckerConfig{Clock: fake, InitialState: InitUp, OnTransition: func(t Transition) { got <- t }})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Add("gw1", func(context.Context) error { return errProbe }); err != nil {
		t.Fatal(err)
	}
	c.Start()
	c.Start() // a second Start is a no-op
	waitFor(t, "the ticker", func() bool { return fake.Waiters() == 1 })
	fake.Advance(time.Second)
	tr := recv(t, got)
	if tr.Target != "gw1" || tr.To != Down {
		t.Fatalf("transition %+v", tr)
	}
	c.Close()
	c.Close()
	if fake.Waiters() != 0 {
		t.Fatalf("%d timers or tickers left armed", fake.Waiters())
	}
}

// Close cancels a running probe and waits for its prober.
func TestCheckerCloseDuringRound(t *testing.T) {
	defer goleak.VerifyNone(t)
	fake := clock.NewFake()
	c, err := NewChecker(CheckerConfig{Clock: fake})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{}, 1)
	if err := c.Add("gw1", func(ctx context.Context) error {
		started <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { c.Round(); close(done) }()
	recv(t, started)
	c.Close()
	recv(t, done)
	c.Round() // after Close, a no-op
}
