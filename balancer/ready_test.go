package balancer

import (
	"errors"
	"testing"
	"time"

	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/protocol"
)

// TestEmptyPoolIsUnavailable starts a proxy whose pool has no gateway up
// (as a restarted proxy is until gossip finds the pool): it is not ready,
// and calls fail with UNAVAILABLE (try again), not NOT_FOUND (fix the
// call), stateless or stateful, new or resumed; a resumed session is not
// declared lost. Once its gateway dies, a proxy that was ready is not.
func TestEmptyPoolIsUnavailable(t *testing.T) {
	p, err := New(Config{TCP: "127.0.0.1:0", WS: "127.0.0.1:0", DialTimeout: 200 * time.Millisecond}, discovery.NewStatic(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Ready(); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("Ready before Start: %v", err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if err := p.Ready(); !errors.Is(err, ErrNoGateway) {
		t.Fatalf("Ready with an empty pool: %v", err)
	}
	for _, binding := range gatewaytest.Bindings {
		addr := p.Addrs().TCP
		if binding == "ws" {
			addr = p.Addrs().WS
		}
		a := gatewaytest.Dial(t, binding, addr, gatewaytest.Options{})
		a.Hello(0, protocol.SessionID{})
		for _, c := range []gatewaytest.Call{
			getOrderCall,
			{Target: "cart@1.Cart.$new", Session: protocol.NewSessionID(), Flags: protocol.FlagNewSession},
			{Target: "cart@1.Cart.Total", Session: protocol.NewSessionID(), Object: 1},
		} {
			gatewaytest.ExpectError(t, a.Call(c), protocol.CodeUnavailable)
		}
	}
	if n := p.Stats().SessionsLost; n != 0 {
		t.Fatalf("%d sessions declared lost by a proxy with an empty pool", n)
	}

	gs := startGateways(t, 1, nil)
	q := startProxy(t, gs, nil)
	if err := q.Ready(); err != nil {
		t.Fatalf("Ready with a live gateway: %v", err)
	}
	_ = gs[0].Close()
	proctest.Eventually(t, 5*time.Second, "not ready once its only gateway died", func() bool {
		return errors.Is(q.Ready(), ErrNoGateway)
	})
}

// TestPoolSettle: a proxy that just started (as after a restart, while
// gossip is still telling it the pool) answers a resumed session that no
// gateway it knows holds with UNAVAILABLE, try again, not SESSION_LOST; once
// PoolSettle has passed, SESSION_LOST.
func TestPoolSettle(t *testing.T) {
	gs := startGateways(t, 1, nil)
	p := startProxy(t, gs, func(c *Config) { c.PoolSettle = time.Hour })
	a := gatewaytest.Dial(t, "tcp", p.Addrs().TCP, gatewaytest.Options{})
	a.Hello(0, protocol.SessionID{})
	resumed := gatewaytest.Call{Target: "cart@1.Cart.Total", Session: protocol.NewSessionID(), Object: 1}
	gatewaytest.ExpectError(t, a.Call(resumed), protocol.CodeUnavailable)
	if n := p.Stats().SessionsLost; n != 0 {
		t.Fatalf("a settling proxy declared %d sessions lost", n)
	}
	q := startProxy(t, gs, func(c *Config) { c.PoolSettle = time.Millisecond })
	proctest.Eventually(t, 5*time.Second, "settled", func() bool { return !q.settling() })
	b := gatewaytest.Dial(t, "tcp", q.Addrs().TCP, gatewaytest.Options{})
	b.Hello(0, protocol.SessionID{})
	gatewaytest.ExpectError(t, b.Call(resumed), protocol.CodeSessionLost)
}
