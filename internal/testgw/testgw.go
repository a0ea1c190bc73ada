// Package testgw starts embedded gateways hosting the example modules, on
// loopback port-0 listeners, for tests of the packages that talk to
// gateways (client, balancer, bench).
package testgw

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/graftlb/graftlb/discovery"
	"github.com/rs/zerolog"

	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/gateway/modules/chaos"
	"github.com/graftlb/graftlb/gateway/modules/orders"
	"github.com/graftlb/graftlb/gateway/modules/ticker"
)

// Modules returns fresh instances of every example module.
func Modules() []*gateway.Module {
	return []*gateway.Module{orders.Module(), cart.Module(), ticker.Module(), chaos.Module()}
}

// Start runs a gateway named name with every example module and all three
// listeners on 127.0.0.1:0. mutate, if not nil, edits the config first.
// The gateway is closed when the test ends.
func Start(tb testing.TB, name string, mutate func(*gateway.Config)) *gateway.Gateway {
	tb.Helper()
	cfg := gateway.DefaultConfig()
	cfg.Name = name
	cfg.TCP, cfg.WS, cfg.HTTP = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Modules = Modules()
	if mutate != nil {
		mutate(&cfg)
	}
	g, err := gateway.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := g.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = g.Close() })
	return g
}

// Targets returns the client targets of g: "tcp://..." and "ws://.../ws".
func Targets(g *gateway.Gateway) map[string]string {
	a := g.Addrs()
	return map[string]string{"tcp": "tcp://" + a.TCP, "ws": "ws://" + a.WS + "/ws"}
}

// GossipPool starts gateways named names, as Start does, joined into one
// gossip pool (discovery.JoinGateway on loopback, a fixed test key), so
// that a draining one can hand its sessions to the others; it returns
// once every member sees the whole pool. Members leave when the test ends.
func GossipPool(tb testing.TB, names []string, mutate func(*gateway.Config)) []*gateway.Gateway {
	tb.Helper()
	key := base64.StdEncoding.EncodeToString([]byte("graftlb-test-gossip-key-32-bytes"))
	nop := zerolog.Nop()
	var gs []*gateway.Gateway
	var members []*discovery.Membership
	var seed string
	for _, name := range names {
		g := Start(tb, name, mutate)
		cfg := discovery.Config{BindAddr: "127.0.0.1:0", Key: key, Logger: &nop}
		if seed != "" {
			cfg.Join = []string{seed}
		}
		m, err := discovery.JoinGateway(g, cfg)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = m.Close() })
		if seed == "" {
			seed = m.Gossip().LocalAddr()
		}
		gs, members = append(gs, g), append(members, m)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, m := range members {
		for len(m.Gossip().Snapshot().Gateways()) < len(names) {
			if time.Now().After(deadline) {
				tb.Fatalf("the gossip pool of %v never formed", names)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return gs
}
