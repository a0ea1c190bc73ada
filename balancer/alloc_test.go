//go:build !race

package balancer

import "testing"

// TestForwardAllocs: forwarding a call through the proxy and its result
// back allocates nothing in steady state (the process-wide count includes
// the raw client and echo gateway, which allocate nothing per frame).
func TestForwardAllocs(t *testing.T) {
	for _, stateless := range []bool{true, false} {
		p := echoProxy(t, 3)
		c := dialRaw(t, p.Addrs().TCP, stateless)
		id := uint32(0)
		roundTrip := func() {
			id++
			if err := c.send(id); err != nil {
				t.Fatal(err)
			}
			if _, err := c.recv(); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 2000; i++ { // warm maps, pools and buffers
			roundTrip()
		}
		if n := testing.AllocsPerRun(5000, roundTrip); n > 0.02 {
			t.Errorf("stateless=%v: %.3f allocs per forwarded call, want 0", stateless, n)
		}
	}
}
