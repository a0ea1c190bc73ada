// Package testgw starts embedded gateways hosting the example modules, on
// loopback port-0 listeners, for tests of the packages that talk to
// gateways (client, balancer, bench).
package testgw

import (
	"testing"

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
