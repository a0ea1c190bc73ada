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
