package balancer

import (
	"context"
	"github.com/graftlb/graftlb/internal/proctest"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/internal/testgw"
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
