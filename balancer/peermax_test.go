package balancer

import (
	"testing"
	"time"

	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/protocol"
)

// TestProxyHonoursClientMaxFrame has a client announce max_frame 300 in
// its HELLO: a reply larger than that reaches it as ERROR TOO_LARGE for
// that call, the connection stays up and a small reply comes through, as
// a gateway answers a direct client (SPEC.md section 6). Before, a 984-byte
// RESULT reached a client that announced 300. The proxy's WELCOME also
// announces the session TTL its gateways apply.
func TestProxyHonoursClientMaxFrame(t *testing.T) {
	gs := startGateways(t, 2, func(c *gateway.Config) { c.SessionTTL = 7 * time.Minute })
	p := startProxy(t, gs, nil)
	for _, binding := range gatewaytest.Bindings {
		t.Run(binding, func(t *testing.T) {
			addr := p.Addrs().TCP
			if binding == "ws" {
				addr = p.Addrs().WS
			}
			a := gatewaytest.Dial(t, binding, addr, gatewaytest.Options{})
			_, w := a.HelloWith(0, protocol.SessionID{}, protocol.Hello{Client: "small", MaxFrame: 300})
			if w.SessionTTLMs != uint32(7*time.Minute/time.Millisecond) {
				t.Fatalf("WELCOME session_ttl_ms %d, want the gateways' 7m", w.SessionTTLMs)
			}
			big := gatewaytest.Call{Target: "orders@1.Orders.ListOrders", Args: []any{10}, Flags: protocol.FlagStateless}
			for _, c := range []gatewaytest.Call{big, {Target: big.Target, Args: big.Args}} { // stateless, then stateful
				gatewaytest.ExpectError(t, a.Call(c), protocol.CodeTooLarge)
			}
			if f := a.Call(getOrderCall); f == nil || f.Type != protocol.TypeResult || len(f.Body) > 300 {
				t.Fatalf("a small reply after a refused large one: %s", gatewaytest.Describe(f))
			}
		})
	}
}
