package health

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/graftlb/graftlb/clock"
)

type stateChanges struct{ got []string }

func (s *stateChanges) add(name string, from, to State) {
	s.got = append(s.got, name+":"+from.String()+"->"+to.String())
}

func newTestBreaker(t *testing.T, s Settings) (*Breaker, *clock.Fake, *stateChanges) {
	t.Helper()
	fake := clock.NewFake()
	sc := &stateChanges{}
	s.Clock = fake
	s.OnStateChange = sc.add
	b, err := NewBreaker("gw1", s)
	if err != nil {
		t.Fatal(err)
	}
	return b, fake, sc
}

// calls runs ok successful and failed failed calls, one after the other.
func calls(t *testing.T, b *Breaker, ok, failed int) {
	t.Helper()
	for i := range ok + failed {
		tk, err := b.Allow()
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		b.Done(tk, i < ok)
	}
}

func trip(t *testing.T, b *Breaker) {
	t.Helper()
	calls(t, b, 9, 11)
	if got := b.State(); got != Open {
		t.Fatalf("state %v after 11 failures in 20, want open", got)
	}
}

func TestBreakerFullCycle(t *testing.T) {
	b, fake, sc := newTestBreaker(t, Settings{})
	calls(t, b, 10, 9) // 19 calls: under MinCalls
	if b.State() != Closed {
		t.Fatal("opened under MinCalls")
	}
	calls(t, b, 0, 1) // 20 calls, 10 failed: 0.5 does not exceed 0.5
	if b.State() != Closed {
		t.Fatal("opened at exactly the failure rate")
	}
	calls(t, b, 0, 1) // 21 calls, 11 failed
	if b.State() != Open {
		t.Fatal("not opened over the failure rate")
	}
	if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("Allow while open: %v, want ErrOpen", err)
	}
	if st := b.Status(); !st.OpenUntil.Equal(fake.Now().Add(5 * time.Second)) {
		t.Fatalf("open until %v", st.OpenUntil)
	}

	fake.Advance(5*time.Second - 1)
	if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("Allow before OpenTimeout: %v, want ErrOpen", err)
	}
	fake.Advance(1)
	var probes []Ticket
	for range 3 {
		tk, err := b.Allow()
		if err != nil {
			t.Fatalf("half-open probe: %v", err)
		}
		probes = append(probes, tk)
	}
	if b.State() != HalfOpen {
		t.Fatalf("state %v, want half-open", b.State())
	}
	if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("a fourth probe: %v, want ErrOpen", err)
	}
	b.Done(probes[0], true)
	b.Done(probes[1], true)
	if b.State() != HalfOpen {
		t.Fatal("closed after 2 of 3 successes")
	}
	b.Done(probes[2], true)
	if b.State() != Closed {
		t.Fatalf("state %v after 3 successes, want closed", b.State())
	}
	if st := b.Status(); st.WindowFailures != 0 || st.InFlight != 0 {
		t.Fatalf("closing did not start a clean window: %+v", st)
	}
	want := []string{"gw1:closed->open", "gw1:open->half-open", "gw1:half-open->closed"}
	if !slices.Equal(sc.got, want) {
		t.Fatalf("transitions %v, want %v", sc.got, want)
	}
}

func TestBreakerHalfOpenFailureReopens(t *testing.T) {
	b, fake, sc := newTestBreaker(t, Settings{})
	trip(t, b)
	fake.Advance(5 * time.Second)
	ok1, _ := b.Allow()
	bad, _ := b.Allow()
	b.Done(ok1, true)
	b.Done(bad, false)
	if b.State() != Open {
		t.Fatalf("state %v after a failed probe, want open", b.State())
	}
	fake.Advance(5 * time.Second)
	if b.State() != HalfOpen {
		t.Fatal("not half-open again after OpenTimeout")
	}
	want := []string{"gw1:closed->open", "gw1:open->half-open", "gw1:half-open->open", "gw1:open->half-open"}
	if !slices.Equal(sc.got, want) {
		t.Fatalf("transitions %v, want %v", sc.got, want)
	}
}

func TestBreakerCaps(t *testing.T) {
	b, _, _ := newTestBreaker(t, Settings{MaxConcurrent: 3})
	var ts []Ticket
	for i := range 3 {
		tk, err := b.Allow()
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		ts = append(ts, tk)
	}
	if _, err := b.Allow(); !errors.Is(err, ErrTooMany) {
		t.Fatalf("fourth call: %v, want ErrTooMany", err)
	}
	if st := b.Status(); st.InFlight != 3 {
		t.Fatalf("status %+v", st)
	}
	b.Done(ts[0], false)
	b.Cancel(ts[1])
	b.Done(ts[2], true)
	if st := b.Status(); st.InFlight != 0 {
		t.Fatalf("slots not freed: %+v", st)
	}
	if _, err := b.Allow(); err != nil {
		t.Fatalf("Allow after the calls ended: %v", err)
	}
}

func TestBreakerStaleTicket(t *testing.T) {
	b, fake, sc := newTestBreaker(t, Settings{HalfOpenMax: 1, HalfOpenSuccesses: 1})
	var slow []Ticket
	for range 4 {
		tk, _ := b.Allow()
		slow = append(slow, tk)
	}
	trip(t, b)
	fake.Advance(5 * time.Second)
	probe, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	// Calls admitted before the trip end now: successes do not close the
	// breaker, a failure does not reopen it.
	b.Done(slow[0], true)
	b.Done(slow[1], false)
	b.Cancel(slow[2])
	if b.State() != HalfOpen {
		t.Fatalf("stale outcomes moved the breaker to %v", b.State())
	}
	if st := b.Status(); st.InFlight != 2 || st.Probes != 1 {
		t.Fatalf("stale tickets did not free their slots, or freed a probe: %+v", st)
	}
	b.Done(probe, true)
	b.Done(slow[3], false)
	if b.State() != Closed {
		t.Fatalf("state %v, want closed", b.State())
	}
	if len(sc.got) != 3 {
		t.Fatalf("transitions %v", sc.got)
	}
	b.Done(Ticket{}, false) // the zero ticket is no call
	if st := b.Status(); st.InFlight != 0 || st.WindowFailures != 0 {
		t.Fatalf("status %+v", st)
	}
}

func TestBreakerCancelFreesProbe(t *testing.T) {
	b, fake, _ := newTestBreaker(t, Settings{HalfOpenMax: 1, HalfOpenSuccesses: 1})
	trip(t, b)
	fake.Advance(5 * time.Second)
	p, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("second probe: %v, want ErrOpen", err)
	}
	b.Cancel(p)
	if b.State() != HalfOpen {
		t.Fatal("Cancel changed the state")
	}
	p, err = b.Allow()
	if err != nil {
		t.Fatalf("probe after a cancelled one: %v", err)
	}
	b.Done(p, true)
	if b.State() != Closed {
		t.Fatal("not closed")
	}
}

func TestBreakerRollingWindow(t *testing.T) {
	tests := []struct {
		name    string
		advance time.Duration // between the first batch of failures and the last
		want    State
	}{
		{"old failures still in the window", 5 * time.Second, Open},
		{"last bucket still in the window", 9*time.Second + 999*time.Millisecond, Open},
		{"old failures left the window", 10 * time.Second, Closed},
		{"long idle", time.Hour, Closed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, fake, _ := newTestBreaker(t, Settings{})
			calls(t, b, 0, 15)
			fake.Advance(tt.advance)
			calls(t, b, 0, 5)
			if got := b.State(); got != tt.want {
				t.Fatalf("state %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBreakerStatus(t *testing.T) {
	b, fake, _ := newTestBreaker(t, Settings{})
	calls(t, b, 3, 2)
	if st := b.Status(); st.State != Closed || st.WindowSuccesses != 3 || st.WindowFailures != 2 || st.Generation != 1 {
		t.Fatalf("status %+v", st)
	}
	fake.Advance(10 * time.Second)
	if st := b.Status(); st.WindowSuccesses != 0 || st.WindowFailures != 0 {
		t.Fatalf("status after the window passed %+v", st)
	}
	if b.Name() != "gw1" {
		t.Fatal(b.Name())
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{Closed: "closed", Open: "open", HalfOpen: "half-open", 7: "unknown"} {
		if s.String() != want {
			t.Errorf("%d: %q, want %q", s, s.String(), want)
		}
	}
}

// TestBreakerSuccessTakesNoLock: while closed, a call that succeeds is
// admitted and counted without the breaker's lock (the test holds it), once
// the window's current bucket has started; a failure takes it.
func TestBreakerSuccessTakesNoLock(t *testing.T) {
	b, _, _ := newTestBreaker(t, Settings{})
	calls(t, b, 1, 0) // starts the current bucket
	b.mu.Lock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk, err := b.Allow()
		if err != nil {
			t.Error(err)
			return
		}
		b.Done(tk, true)
		tk, _ = b.Allow()
		b.Cancel(tk)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		b.mu.Unlock()
		t.Fatal("a successful call waited for the breaker's lock")
	}
	b.mu.Unlock()
	calls(t, b, 0, 1)
	if st := b.Status(); st.WindowSuccesses != 2 || st.WindowFailures != 1 {
		t.Fatalf("status %+v, want 2 successes and 1 failure", st)
	}
}

// TestBreakerConcurrentCounts: successes counted at once from many
// goroutines, across bucket boundaries, all land in the window.
func TestBreakerConcurrentCounts(t *testing.T) {
	b, fake, _ := newTestBreaker(t, Settings{MaxConcurrent: 1 << 20})
	const workers, each = 8, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				tk, err := b.Allow()
				if err != nil {
					t.Error(err)
					return
				}
				b.Done(tk, true)
				if w == 0 && i%100 == 99 {
					fake.Advance(500 * time.Millisecond) // half a bucket: new buckets start under load
				}
			}
		}()
	}
	wg.Wait()
	if st := b.Status(); st.WindowSuccesses != workers*each || st.InFlight != 0 {
		t.Fatalf("status %+v, want %d successes and none in flight", st, workers*each)
	}
}
