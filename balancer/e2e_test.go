package balancer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/graftlb/graftlb/clock"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/gateway/modules/orders"
	"github.com/graftlb/graftlb/internal/testgw"
	"github.com/graftlb/graftlb/protocol"
)

// TestStatelessSpreadFromOneConnection: one client connection, 64 calls in
// flight, 3000 stateless calls: every gateway serves 20–47% of them and
// every result is right.
func TestStatelessSpreadFromOneConnection(t *testing.T) {
	gs := startGateways(t, 3, nil)
	p := startProxy(t, gs, nil)
	for _, binding := range []string{"tcp", "ws"} {
		t.Run(binding, func(t *testing.T) {
			c := dialProxy(t, proxyTargets(p)[binding])
			s := c.Session()
			const calls, inflight = 3000, 64
			var mu sync.Mutex
			served := map[string]int{}
			work := make(chan int)
			errs := make(chan error, calls)
			var wg sync.WaitGroup
			for w := 0; w < inflight; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range work {
						id := fmt.Sprintf("o-%d", i)
						res, err := s.CallStateless(testCtx(t), "orders@1.Orders.GetOrder", id)
						if err != nil {
							errs <- err
							continue
						}
						var o orders.Order
						if err := res.Decode(&o); err != nil || o != orders.Make(id, o.Gateway) {
							errs <- fmt.Errorf("call %d: wrong result %+v (%v)", i, o, err)
							continue
						}
						mu.Lock()
						served[o.Gateway]++
						mu.Unlock()
					}
				}()
			}
			for i := 0; i < calls; i++ {
				work <- i
			}
			close(work)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			t.Logf("served per gateway: %v", served)
			for _, g := range gs {
				share := float64(served[g.Name()]) / calls
				if share < 0.20 || share > 0.47 {
					t.Errorf("%s served %.1f%% of the calls, want 20%%–47%%", g.Name(), 100*share)
				}
			}
		})
	}
}

// TestSessionsAgreeAcrossProxies: 300 cart sessions built through proxy A
// read back exactly through proxy B, started later, which shares nothing
// with A.
func TestSessionsAgreeAcrossProxies(t *testing.T) {
	gs := startGateways(t, 3, nil)
	pa := startProxy(t, gs, nil)
	ca := dialProxy(t, proxyTargets(pa)["tcp"])
	carts := testgw.BuildCarts(t, ca, 300)
	owners := map[string]int{}
	for _, cs := range carts {
		owners[cs.Owner]++
	}
	t.Logf("owners through proxy A: %v", owners)
	if len(owners) != 3 {
		t.Errorf("300 sessions landed on %d gateways, want all 3", len(owners))
	}

	// The 300 sessions of one client connection shared the proxy's few
	// multiplexed connections to each gateway.
	for _, g := range gs {
		if n := g.Stats().Connections; n != DefaultBackendConns {
			t.Errorf("%s has %d connections from the proxy, want %d", g.Name(), n, DefaultBackendConns)
		}
	}
	pb := startProxy(t, gs, nil)
	for _, binding := range []string{"tcp", "ws"} {
		cb := dialProxy(t, proxyTargets(pb)[binding])
		var wg sync.WaitGroup
		errs := make(chan error, len(carts))
		for _, cs := range carts {
			wg.Add(1)
			go func(cs testgw.CartSession) {
				defer wg.Done()
				if _, err := testgw.VerifyCart(testCtx(t), cb, cs); err != nil {
					errs <- fmt.Errorf("%s session %v: %w", binding, cs.ID, err)
				}
			}(cs)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
}

// TestCallbacksAndEventsThroughProxy: a callback and events reach the
// client through the proxy exactly as directly, over TCP and WebSocket, for
// stateful and stateless calls.
func TestCallbacksAndEventsThroughProxy(t *testing.T) {
	gs := startGateways(t, 3, nil)
	p := startProxy(t, gs, nil)
	for _, binding := range []string{"tcp", "ws"} {
		for _, stateless := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stateless=%v", binding, stateless), func(t *testing.T) {
				c := dialProxy(t, proxyTargets(p)[binding])
				checkCallbacksAndEvents(t, c.NewSession(), stateless)
			})
		}
	}
}

// TestProxyErrors: errors from gateways and from the proxy itself reach
// the client with their codes; NOT_OWNER never does.
func TestProxyErrors(t *testing.T) {
	gs := startGateways(t, 2, nil)
	p := startProxy(t, gs, nil)
	c := dialProxy(t, proxyTargets(p)["tcp"])
	s := c.Session()
	if _, err := s.CallStateless(testCtx(t), "orders@1.Orders.Nope"); !errors.Is(err, protocol.ErrNotFound) {
		t.Errorf("unknown method: %v", err)
	}
	if _, err := s.CallStateless(testCtx(t), "chaos@1.Chaos.Fail", "APP_EXCEPTION"); !errors.Is(err, protocol.ErrAppException) {
		t.Errorf("app exception: %v", err)
	}
	// A resumed session no gateway holds: SESSION_LOST, not NOT_OWNER.
	ghost := c.ResumeSession(protocol.NewSessionID())
	if _, err := ghost.Call(testCtx(t), "orders@1.Orders.GetOrder", "o-1"); !errors.Is(err, protocol.ErrSessionLost) {
		t.Errorf("unknown resumed session: %v, want SESSION_LOST", err)
	}
	// The proxy enforces deadlines.
	short, cancel := context.WithTimeout(context.Background(), 200e6)
	defer cancel()
	if _, err := s.CallStateless(short, "chaos@1.Chaos.Sleep", 3000); !errors.Is(err, protocol.ErrDeadlineExceeded) {
		t.Errorf("deadline: %v", err)
	}
}

// TestKeepaliveThroughProxy: a client that only PINGs keeps its session
// alive on the gateway behind the proxy; one that is silent loses it after
// the gateway's session TTL.
func TestKeepaliveThroughProxy(t *testing.T) {
	clk := clock.NewFake()
	gs := startGateways(t, 1, func(c *gateway.Config) { c.Clock, c.SessionTTL = clk, time.Minute })
	p := startProxy(t, gs, nil)
	for _, ping := range []bool{true, false} {
		a := gatewaytest.Dial(t, "tcp", p.Addrs().TCP, gatewaytest.Options{})
		a.Hello(0, protocol.SessionID{})
		f := a.Call(gatewaytest.Call{Target: "cart@1.Cart.$new"})
		gatewaytest.Result(t, f, nil)
		obj := f.Object
		for i := 0; i < 4; i++ { // 4 × 40 s: well past the 1 min TTL
			if ping {
				_ = a.Send(&protocol.Frame{Type: protocol.TypePing, CallID: uint32(100 + i)})
				if pong := a.Next(); pong == nil || pong.Type != protocol.TypePong {
					t.Fatalf("PING answered %s", gatewaytest.Describe(pong))
				}
				// A stateless call behind it on the same gateway connection
				// returns after the gateway has handled the PING.
				gatewaytest.Result(t, a.Call(getOrderCall), nil)
			}
			clk.Advance(40 * time.Second)
		}
		f = a.Call(gatewaytest.Call{Target: "cart@1.Cart.Total", Object: obj})
		if ping {
			gatewaytest.Result(t, f, nil)
		} else {
			gatewaytest.ExpectError(t, f, protocol.CodeSessionLost)
		}
		a.Close()
	}
}

// TestCallTimeout: with CallTimeout, a call that carries no deadline fails
// with DEADLINE_EXCEEDED instead of waiting for a gateway forever.
func TestCallTimeout(t *testing.T) {
	gs := startGateways(t, 1, nil)
	p := startProxy(t, gs, func(c *Config) { c.CallTimeout = 200 * time.Millisecond })
	s := dialProxy(t, proxyTargets(p)["tcp"]).Session()
	begin := time.Now()
	_, err := s.CallStateless(context.Background(), "chaos@1.Chaos.Sleep", 5000) // no deadline
	if !errors.Is(err, protocol.ErrDeadlineExceeded) {
		t.Fatalf("a 5 s call with a 200 ms call timeout: %v", err)
	}
	if d := time.Since(begin); d > 4*time.Second {
		t.Fatalf("it failed after %v", d)
	}
	if _, err := s.CallStateless(context.Background(), "chaos@1.Chaos.Sleep", 10); err != nil {
		t.Fatalf("a short call: %v", err)
	}
}
