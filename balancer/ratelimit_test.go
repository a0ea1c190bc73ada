package balancer

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graftlb/graftlb/clock"
	"github.com/graftlb/graftlb/protocol"
)

// The limit lets a burst through at once, then one call per interval.
func TestRateLimitBurstThenRate(t *testing.T) {
	l := newRateLimit(10, 5) // 10/s: one call per 100 ms, bursts of 5
	var tat atomic.Int64
	now := time.Unix(1000, 0).UnixNano()
	for i := 0; i < 5; i++ {
		if !l.allow(&tat, now) {
			t.Fatalf("call %d of a burst of 5 refused", i+1)
		}
	}
	if l.allow(&tat, now) {
		t.Fatal("a 6th call at once admitted with a burst of 5")
	}
	if l.allow(&tat, now+int64(99*time.Millisecond)) {
		t.Fatal("admitted 99 ms later; the rate allows one per 100 ms")
	}
	if !l.allow(&tat, now+int64(100*time.Millisecond)) {
		t.Fatal("refused 100 ms later")
	}
	// Idle for a second: the whole burst is back, no more.
	later := now + int64(2*time.Second)
	n := 0
	for l.allow(&tat, later) {
		n++
	}
	if n != 5 {
		t.Fatalf("after a pause %d calls admitted at once, want the burst of 5", n)
	}
	var off rateLimit
	for i := 0; i < 1000; i++ {
		if !off.allow(&tat, now) {
			t.Fatal("the zero limit refused a call")
		}
	}
}

// Connections of one source racing for its word admit exactly the burst.
func TestRateLimitConcurrent(t *testing.T) {
	l := newRateLimit(1, 50)
	var tat atomic.Int64
	now := time.Unix(1000, 0).UnixNano()
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				if l.allow(&tat, now) {
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := admitted.Load(); n != 50 {
		t.Fatalf("%d calls admitted by 8 racing connections, want the burst of 50", n)
	}
}

// TestCallRateEndToEnd (issue 16): past the call rate, a source's calls
// get OVERLOADED naming the limit and are not forwarded; the other
// connections of the same source share its budget; once it refills,
// calls pass again. The proxy's clock is a fake one, held still: the
// burst is all there is until it moves.
func TestCallRateEndToEnd(t *testing.T) {
	gs := startGateways(t, 1, nil)
	clk := clock.NewFake()
	p := startProxy(t, gs, func(c *Config) { c.CallRate, c.CallBurst, c.Clock = 20, 10, clk })
	c1 := dialProxy(t, proxyTargets(p)["tcp"])
	c2 := dialProxy(t, proxyTargets(p)["ws"])
	served := func() uint64 { return gs[0].Stats().CallsServed["orders@1"] }
	calls := func(n int) (ok, overloaded int) {
		for i := 0; i < n; i++ {
			c := c1
			if i%2 == 1 {
				c = c2
			}
			_, err := c.Session().CallStateless(testCtx(t), "orders@1.Orders.GetOrder", "o-1")
			var pe *protocol.Error
			switch {
			case err == nil:
				ok++
			case errors.As(err, &pe) && pe.Code == protocol.CodeOverloaded && strings.Contains(pe.Message, "call_rate"):
				overloaded++
			default:
				t.Fatalf("call %d: %v", i, err)
			}
		}
		return ok, overloaded
	}
	before := served()
	if ok, over := calls(40); ok != 10 || over != 30 {
		t.Fatalf("40 calls over 2 connections of one source: %d ok, %d OVERLOADED; want the burst of 10, and 30", ok, over)
	}
	if got := served() - before; got != 10 {
		t.Fatalf("the gateway served %d calls, want only the 10 admitted", got)
	}
	clk.Advance(250 * time.Millisecond) // 20/s: 5 more
	if ok, over := calls(8); ok != 5 || over != 3 {
		t.Fatalf("250 ms later: %d ok, %d OVERLOADED; want 5 and 3", ok, over)
	}
}
