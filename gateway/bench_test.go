package gateway_test

import (
	"testing"

	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/gateway/modules/orders"
	"github.com/graftlb/graftlb/protocol"
)

// BenchmarkCall measures one call round trip through the gateway over
// loopback, client included, one call in flight at a time.
func BenchmarkCall(b *testing.B) {
	for _, binding := range gatewaytest.Bindings {
		b.Run(binding, func(b *testing.B) {
			cfg := gateway.DefaultConfig()
			cfg.TCP, cfg.WS, cfg.HTTP = "127.0.0.1:0", "127.0.0.1:0", ""
			cfg.Modules = []*gateway.Module{orders.Module(), cart.Module()}
			g, err := gateway.New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			if err := g.Start(); err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			addr := g.Addrs().TCP
			if binding == "ws" {
				addr = g.Addrs().WS
			}
			p := gatewaytest.Dial(b, binding, addr, gatewaytest.Options{})
			p.Hello(0, protocol.SessionID{})
			call := gatewaytest.Call{Target: "orders@1.Orders.GetOrder", Flags: protocol.FlagStateless, Args: []any{"o-1"}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if f := p.Call(call); f == nil || f.Type != protocol.TypeResult {
					b.Fatalf("got %s", gatewaytest.Describe(f))
				}
			}
		})
	}
}
