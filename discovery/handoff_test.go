package discovery

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/graftlb/graftlb/affinity"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/protocol"
)

// TestHandoffOverGossip: three embedded gateways joined by gossip; one
// holding 200 idle carts (made through two proxies' connections) drains.
// Every cart is adopted by the gateway its preference list names next (the
// gateway a proxy will look for it on), reads back exactly there, both
// proxy connections hear of every move (MOVED), and the drained gateway
// exits within seconds, not at its drain grace.
func TestHandoffOverGossip(t *testing.T) {
	awaitMemberlistExit(t)
	const carts = 200
	names := []string{"gw1", "gw2", "gw3"}
	gws := map[string]*gateway.Gateway{}
	var seed string
	var members []*Membership
	for _, name := range names {
		g := startCartGateway(t, name)
		cfg := Config{BindAddr: "127.0.0.1:0", Key: testKey, Logger: ptr(zerolog.Nop())}
		if seed != "" {
			cfg.Join = []string{seed}
		}
		m, err := JoinGateway(g, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() })
		if seed == "" {
			seed = m.Gossip().LocalAddr()
		}
		gws[name] = g
		members = append(members, m)
	}
	waitFor(t, converge, "every member sees the pool", func() bool {
		for _, m := range members {
			if len(m.Gossip().Snapshot().Gateways()) != len(names) {
				return false
			}
		}
		return true
	})
	a := gws["gw1"]
	pxs := []*gatewaytest.Peer{proxyConn(t, a, "px1"), proxyConn(t, a, "px2")}
	type held struct {
		sid   protocol.SessionID
		obj   uint64
		items []string
	}
	var all []held
	for i := range carts {
		px := pxs[i%2]
		sid := protocol.NewSessionID()
		f := px.Call(gatewaytest.Call{Target: "cart@1.Cart.$new", Session: sid, Flags: protocol.FlagNewSession})
		gatewaytest.Result(t, f, nil)
		h := held{sid: sid, obj: f.Object}
		for k := range 2 {
			item := fmt.Sprintf("c%d-%d", i, k)
			gatewaytest.Result(t, px.Call(gatewaytest.Call{Target: "cart@1.Cart.AddItem", Session: sid, Object: f.Object,
				Args: []any{item, int64(100 + k)}}), nil)
			h.items = append(h.items, item)
		}
		all = append(all, h)
	}
	if n := a.Stats().Sessions; n != carts {
		t.Fatalf("gw1 holds %d sessions, want %d", n, carts)
	}

	start := time.Now()
	if err := a.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("gw1 drained %d idle carts in %v", carts, took)
	if took > 5*time.Second {
		t.Fatalf("drain took %v: the gateway waited instead of moving its sessions", took)
	}
	s := a.Stats()
	if s.SessionsMoved != carts || s.SessionsLostAtDrain != 0 {
		t.Fatalf("gw1 stats: %+v, want %d moved, 0 lost", s, carts)
	}

	tab, err := affinity.NewTable(affinity.UniformMembers(names...))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{}
	peers := map[string]*gatewaytest.Peer{}
	for _, h := range all {
		var to string
		for _, i := range tab.Preference(affinity.HashSession(h.sid), nil) {
			if to = tab.Name(i); to != "gw1" {
				break
			}
		}
		want[to]++
		p := peers[to]
		if p == nil {
			p = gatewaytest.Dial(t, "tcp", gws[to].Addrs().TCP, gatewaytest.Options{})
			p.Hello(0, protocol.SessionID{})
			peers[to] = p
		}
		var r cart.ItemsResult
		gatewaytest.Result(t, p.Call(gatewaytest.Call{Target: "cart@1.Cart.Items", Session: h.sid, Object: h.obj}), &r)
		if !slices.Equal(r.Items, h.items) || r.Gateway != to {
			t.Fatalf("cart %s on %s: %+v, want %v", h.sid, to, r, h.items)
		}
	}
	for name, n := range want {
		if s.SessionsMovedTo[name] != n {
			t.Fatalf("moved to %v, want %v", s.SessionsMovedTo, want)
		}
		if got := gws[name].Stats().SessionsAdopted; got != n {
			t.Fatalf("%s adopted %d, want %d", name, got, n)
		}
	}
	t.Logf("moved: %v", s.SessionsMovedTo)
	for i, px := range pxs {
		seen := map[protocol.SessionID]bool{}
		for len(seen) < carts {
			f := px.Next()
			if f == nil {
				t.Fatalf("proxy %d heard of %d moves, want %d", i+1, len(seen), carts)
			}
			if f.Type == protocol.TypeMoved {
				seen[f.Session] = true
			}
		}
	}
}

// startCartGateway runs an embedded gateway hosting cart@1, TCP only.
func startCartGateway(t *testing.T, name string) *gateway.Gateway {
	t.Helper()
	cfg := gateway.DefaultConfig()
	cfg.Name = name
	cfg.TCP, cfg.WS, cfg.HTTP = "127.0.0.1:0", "", ""
	cfg.Modules = []*gateway.Module{cart.Module()}
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

func proxyConn(t *testing.T, g *gateway.Gateway, instance string) *gatewaytest.Peer {
	t.Helper()
	p := gatewaytest.Dial(t, "tcp", g.Addrs().TCP, gatewaytest.Options{})
	p.HelloWith(protocol.FlagProxy, protocol.SessionID{}, protocol.Hello{Client: "test-proxy", Instance: instance})
	return p
}
