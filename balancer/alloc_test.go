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

// TestPickAllocs: the pickers allocate nothing per pick, the bounded-load
// one included (its scratch buffers are the connection's).
func TestPickAllocs(t *testing.T) {
	_, bs := testBackends(t, gw("a", "orders@1"), gw("b", "orders@1"), gw("c", "orders@1"))
	plain, _ := buildSnapshot(bs, nil, testRouting)
	bounded, _ := buildSnapshot(bs, nil, routing{panicThreshold: 0.5, maxOwnerProbes: 8, loadBound: 0.25})
	empty, _ := buildSnapshot(nil, nil, testRouting)
	module := []byte("orders@1")
	scratch := &pickScratch{}
	key := uint64(0)
	tests := []struct {
		name string
		pi   picker
		in   pickInfo
	}{
		{"p2c", plain.stateless, pickInfo{module: module, skip: bs[0], now: 1}},
		{"preference walk", plain.sessions, pickInfo{module: module, fresh: true, scratch: scratch}},
		{"bounded load", bounded.sessions, pickInfo{module: module, fresh: true, scratch: scratch}},
		{"error picker", empty.sessions, pickInfo{module: module, scratch: scratch}},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(1000, func() {
			key++
			tt.in.key = key
			_, _ = tt.pi.Pick(tt.in)
		}); n != 0 {
			t.Errorf("%s: %v allocs per pick, want 0", tt.name, n)
		}
	}
}
