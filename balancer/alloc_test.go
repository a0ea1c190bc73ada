//go:build !race

package balancer

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/graftlb/graftlb/credential"
	"github.com/graftlb/graftlb/internal/credtest"
	"github.com/graftlb/graftlb/protocol"
)

// TestForwardAllocs: forwarding a call through the proxy and its result
// back allocates nothing in steady state (the process-wide count includes
// the raw client and echo gateway, which allocate nothing per frame).
func TestForwardAllocs(t *testing.T) {
	for _, stateless := range []bool{true, false} {
		p := echoProxy(t, 3)
		forwardAllocs(t, dialRaw(t, p.Addrs().TCP, stateless), "stateless="+strconv.FormatBool(stateless))
	}
}

// TestForwardAllocsWithCredentials: with credentials on (session ids
// translated both ways), a per-identity rate limit and the module cap,
// forwarding still allocates nothing, for the connection's own session and
// for another one.
func TestForwardAllocsWithCredentials(t *testing.T) {
	tokens := credtest.TokensFile(t, "alice", "alice-token")
	p := echoProxyWith(t, 3, Config{Auth: credential.Config{TokensFile: tokens}, CallRate: 1e9, MaxModuleCalls: 1000})
	for _, stateless := range []bool{true, false} {
		for _, sess := range []protocol.SessionID{{}, protocol.NewSessionID()} {
			c := dialRawAs(t, p.Addrs().TCP, stateless, []byte("alice-token"), sess)
			if !sess.IsZero() {
				// The reply names the session as the client did.
				if err := c.send(1); err != nil {
					t.Fatal(err)
				}
				raw, err := c.pc.ReadFrame()
				if err != nil || protocol.SessionID(raw[8:24]) != sess {
					t.Fatalf("reply names session %x (%v), want the client's %s", raw[8:24], err, sess)
				}
			}
			forwardAllocs(t, c, fmt.Sprintf("stateless=%v, own session=%v", stateless, sess.IsZero()))
		}
	}
}

// forwardAllocs measures the allocations of one round trip of c's call.
func forwardAllocs(t *testing.T, c *rawClient, what string) {
	t.Helper()
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
		t.Errorf("%s: %.3f allocs per forwarded call, want 0", what, n)
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
