package balancer

import (
	"context"
	"testing"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/internal/testgw"
)

// benchmarkStateless runs GetOrder calls from 64 goroutines over one client
// connection to target, the way `graftlb bench --workload stateless` does,
// against real embedded gateways.
func benchmarkStateless(b *testing.B, target string) {
	c, err := client.Dial(context.Background(), target, client.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	s := c.Session()
	b.SetParallelism(32) // 64 callers on 2 cores
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.CallStateless(context.Background(), "orders@1.Orders.GetOrder", "o-1"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGatewayDirect is the baseline for BenchmarkGatewayThroughProxy:
// the same client straight to one gateway.
func BenchmarkGatewayDirect(b *testing.B) {
	g := testgw.Start(b, "gw1", nil)
	benchmarkStateless(b, "tcp://"+g.Addrs().TCP)
}

// BenchmarkGatewayThroughProxy: the same calls through the proxy, spread
// over three gateways. All of it shares the machine's two cores.
func BenchmarkGatewayThroughProxy(b *testing.B) {
	gs := make([]*gateway.Gateway, 3)
	for i := range gs {
		gs[i] = testgw.Start(b, gwName(i), nil)
	}
	p := startProxyB(b, gs)
	benchmarkStateless(b, "tcp://"+p.Addrs().TCP)
}

func startProxyB(b *testing.B, gs []*gateway.Gateway) *Proxy {
	b.Helper()
	p, err := New(Config{TCP: "127.0.0.1:0"}, staticOf(gs))
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close() })
	return p
}
