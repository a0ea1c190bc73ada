package balancer

import (
	"testing"

	"github.com/graftlb/graftlb/protocol"
)

// TestSettleGivesEverythingBack: however a call ends — failed by the proxy
// with its breaker ticket still held (the exit that leaked a breaker slot
// per ONEWAY call), failed after its outcome was reported, or delivered —
// settling it gives back its breaker slot, its retry, its kept frame and
// its client slot, exactly once.
func TestSettleGivesEverythingBack(t *testing.T) {
	p, bs := testBackends(t, gw("a", "orders@1"))
	p.addHealth(bs[0])
	t.Cleanup(func() { p.removeHealth(bs[0]) })
	b := bs[0]
	d := &downstream{p: p, ids: map[uint32]struct{}{}}
	tests := []struct {
		name string
		end  func(c *call)
	}{
		{"fail with the ticket held", func(c *call) { c.fail(protocol.CodeUnavailable, "test") }},
		{"fail after the outcome", func(c *call) {
			c.outcome(false, 0)
			c.fail(protocol.CodeUnavailable, "test")
		}},
		{"unsent, then failed unrouted", func(c *call) {
			c.unsent()
			c.failUnrouted([]byte("orders@1"), protocol.CodeUnavailable, "test")
		}},
		{"deliver", func(c *call) {
			c.outcome(true, 0)
			c.deliver(0, nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A ONEWAY call: nothing is written to the (absent) client.
			d.oneways++
			p.active.Add(1)
			c := call{down: d, flags: protocol.FlagOneway, attempts: 1}
			if !c.takeRetry() {
				t.Fatal("no retry granted")
			}
			c.kept = keepFrame([]byte("frame"))
			tk, err := b.breaker.Allow()
			if err != nil {
				t.Fatal(err)
			}
			c.admitted(b, tk, []byte("orders@1"))
			tt.end(&c)
			if st := b.breaker.Status(); st.InFlight != 0 {
				t.Errorf("breaker slots in flight %d, want 0", st.InFlight)
			}
			if n := p.retries.Load(); n != 0 {
				t.Errorf("retries in flight %d, want 0", n)
			}
			if d.oneways != 0 || p.active.Load() != 0 {
				t.Errorf("client slots %d, active calls %d, want 0 and 0", d.oneways, p.active.Load())
			}
			if c.kept != nil || c.retry || c.ticket != (call{}).ticket {
				t.Errorf("the settled call still holds something: %+v", c)
			}
		})
	}
}
