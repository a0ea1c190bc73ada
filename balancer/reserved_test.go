package balancer

import (
	"testing"

	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/protocol"
)

// TestReservedModulesNotForwarded: a client's CALL of a reserved module
// other than $topic@1 (the $handoff@1 Adopt that gateways use between
// themselves, or any other '$' name) is answered NOT_FOUND by the proxy
// and never reaches a gateway; $topic@1 is answered by the proxy itself.
func TestReservedModulesNotForwarded(t *testing.T) {
	gs := startGateways(t, 1, nil)
	p := startProxy(t, gs, nil)
	for _, binding := range gatewaytest.Bindings {
		addr := p.Addrs().TCP
		if binding == "ws" {
			addr = p.Addrs().WS
		}
		a := gatewaytest.Dial(t, binding, addr, gatewaytest.Options{})
		a.Hello(0, protocol.SessionID{})
		total := func() (n uint64) {
			st := gs[0].Stats()
			for m := range st.CallsServed {
				n += st.CallsServed[m] + st.CallsFailed[m]
			}
			return n
		}
		before := total()
		for _, target := range []string{protocol.HandoffModule + ".Session.Adopt", "$other@1.X.Y"} {
			gatewaytest.ExpectError(t, a.Call(gatewaytest.Call{Target: target, Session: protocol.NewSessionID()}), protocol.CodeNotFound)
		}
		f := a.Call(gatewaytest.Call{Target: protocol.TopicModule + ".Topic.Subscribe", Args: []any{"t"}})
		if f == nil || f.Type != protocol.TypeResult {
			t.Fatalf("a topic subscription: %s", gatewaytest.Describe(f))
		}
		if after := total(); after != before {
			t.Fatalf("reserved calls reached the gateway: %d calls, then %d", before, after)
		}
	}
}
