package balancer

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/modules/ticker"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/internal/testgw"
	"github.com/graftlb/graftlb/protocol"
)

// startGateways runs n embedded gateways gw1..gwN.
func startGateways(t *testing.T, n int, mutate func(*gateway.Config)) []*gateway.Gateway {
	t.Helper()
	gs := make([]*gateway.Gateway, n)
	for i := range gs {
		gs[i] = testgw.Start(t, gwName(i), mutate)
	}
	return gs
}

func testgwStartRaw(t *testing.T, name string, mutate func(*gateway.Config)) *gateway.Gateway {
	return testgw.Start(t, name, mutate)
}

func gwName(i int) string { return "gw" + string(rune('1'+i)) }

// member describes a gateway as a static backend with its name.
func member(g *gateway.Gateway) discovery.Member {
	a := g.Addrs()
	return discovery.Member{Name: g.Name(), Role: discovery.RoleGateway,
		Addrs: discovery.Addrs{TCP: a.TCP, WS: a.WS, HTTP: a.HTTP, TLS: a.TLS}}
}

// staticOf describes gs as a static pool.
func staticOf(gs []*gateway.Gateway) discovery.Source {
	ms := make([]discovery.Member, len(gs))
	for i, g := range gs {
		ms[i] = member(g)
	}
	return discovery.NewStatic(ms)
}

// startProxy runs a proxy in front of gs, waits until it is connected to
// all of them, and closes it when the test ends.
func startProxy(t *testing.T, gs []*gateway.Gateway, mutate func(*Config)) *Proxy {
	t.Helper()
	// The pool is static and known at once: no settling window, so that
	// a resumed session nobody holds is lost at once (TestPoolSettle tests
	// the window).
	cfg := Config{TCP: "127.0.0.1:0", WS: "127.0.0.1:0", PoolSettle: -1}
	if mutate != nil {
		mutate(&cfg)
	}
	p, err := New(cfg, staticOf(gs))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	proctest.Eventually(t, 10*time.Second, "proxy connected to every gateway", func() bool {
		pool := p.Pool()
		if len(pool) != len(gs) {
			return false
		}
		for _, m := range pool {
			if m.State != "ready" {
				return false
			}
		}
		return true
	})
	return p
}

func proxyTargets(p *Proxy) map[string]string {
	a := p.Addrs()
	return map[string]string{"tcp": "tcp://" + a.TCP, "ws": "ws://" + a.WS + "/ws"}
}

func dialProxy(t *testing.T, target string) *client.Conn {
	t.Helper()
	c, err := client.Dial(context.Background(), target, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// checkCallbacksAndEvents makes a call of s whose callbacks must all be
// answered (Each(10) with a callback: 55) and one whose 100 events must all
// arrive, in order, before its result.
func checkCallbacksAndEvents(t *testing.T, s *client.Session, stateless bool) {
	t.Helper()
	ref := s.Callback(func(_ context.Context, args []protocol.RawValue) (any, error) {
		var i int64
		err := protocol.Unmarshal(args[0], &i)
		return i + 1, err
	})
	defer s.Forget(ref)
	each := protocol.Target{Module: "ticker@1", Type: "Ticker", Method: "Each"}
	res, err := s.Do(testCtx(t), client.Request{Target: each, Args: []any{10, ref}, Stateless: stateless})
	if err != nil {
		t.Fatalf("Each (stateless=%v): %v", stateless, err)
	}
	var sum int64
	if err := res.Decode(&sum); err != nil || sum != 55 {
		t.Fatalf("Each(10) = %d (%v), want 55", sum, err)
	}
	var mu sync.Mutex
	var got []int
	s.OnEvent(func(e client.Event) {
		var tk ticker.Tick
		if e.Decode(&tk) == nil {
			mu.Lock()
			got = append(got, tk.Seq)
			mu.Unlock()
		}
	})
	defer s.OnEvent(nil)
	sub := protocol.Target{Module: "ticker@1", Type: "Ticker", Method: "Subscribe"}
	if _, err := s.Do(testCtx(t), client.Request{Target: sub, Args: []any{"t", 100}, Stateless: stateless}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 100 {
		t.Fatalf("%d events arrived before the result, want 100 (stateless=%v)", len(got), stateless)
	}
	for i, q := range got {
		if q != i {
			t.Fatalf("event %d has seq %d", i, q)
		}
	}
}
