package balancer

import (
	"testing"
	"time"

	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/protocol"
)

// served sums the calls of module the gateways answered or failed.
func served(gs []*gateway.Gateway, module string) uint64 {
	var n uint64
	for _, g := range gs {
		st := g.Stats()
		n += st.CallsServed[module] + st.CallsFailed[module]
	}
	return n
}

// expectSilence checks that nothing but the PONG of a PING comes next:
// none of the ONEWAY calls sent before got an answer.
func expectSilence(t *testing.T, a *gatewaytest.Peer) {
	t.Helper()
	if err := a.Send(&protocol.Frame{Type: protocol.TypePing, CallID: 777}); err != nil {
		t.Fatal(err)
	}
	for {
		f := a.Next()
		if f == nil {
			t.Fatal("no PONG")
		}
		if f.Type == protocol.TypePong && f.CallID == 777 {
			return
		}
		t.Fatalf("a ONEWAY call was answered: %s", gatewaytest.Describe(f))
	}
}

// TestOnewaySettles sends many more ONEWAY calls than the breakers admit
// at once, stateless and stateful: every one reaches a gateway, none is
// answered, and afterwards nothing stays held (breaker slots, calls in
// flight, active calls), so ordinary calls still go through. Before, each
// ONEWAY call kept a breaker ticket for good and ~1,024 per gateway wedged
// the pool with CIRCUIT_OPEN.
func TestOnewaySettles(t *testing.T) {
	gs := startGateways(t, 3, nil)
	p := startProxy(t, gs, func(c *Config) { c.Health.Breaker.MaxConcurrent = 8 })
	for _, binding := range gatewaytest.Bindings {
		t.Run(binding, func(t *testing.T) {
			addr := p.Addrs().TCP
			if binding == "ws" {
				addr = p.Addrs().WS
			}
			a := gatewaytest.Dial(t, binding, addr, gatewaytest.Options{})
			a.Hello(0, protocol.SessionID{})
			before := served(gs, "orders@1")
			const n = 300 // > 8 breaker slots × 3 gateways, many times over
			for i := range n {
				// Paced by the in-flight limit, not by replies: ids repeat.
				c := getOrderCall
				c.Flags |= protocol.FlagOneway
				c.CallID = uint32(i%4 + 1)
				if i%2 == 1 {
					c.Flags = protocol.FlagOneway // stateful: the connection's session
				}
				if err := a.Send(a.Frame(c)); err != nil {
					t.Fatal(err)
				}
				if i%4 == 3 {
					// Fewer in flight than a breaker admits: none is refused.
					proctest.Eventually(t, 10*time.Second, "ONEWAY calls ran", func() bool {
						return served(gs, "orders@1")-before >= uint64(i+1)
					})
				}
			}
			proctest.Eventually(t, 10*time.Second, "every ONEWAY call settled", func() bool {
				return p.Stats().Active == 0
			})
			got := served(gs, "orders@1") - before
			if got != n {
				t.Fatalf("gateways ran %d of %d ONEWAY calls", got, n)
			}
			expectSilence(t, a)
			proctest.Eventually(t, 5*time.Second, "no call held at the gateways", func() bool {
				for _, m := range p.Pool() {
					if m.InFlight != 0 || m.Health == nil || m.Health.Breaker == nil || m.Health.Breaker.InFlight != 0 {
						return false
					}
				}
				return true
			})
			for i := range 30 {
				if f := a.Call(getOrderCall); f == nil || f.Type != protocol.TypeResult {
					t.Fatalf("stateless call %d after the ONEWAY calls: %s", i, gatewaytest.Describe(f))
				}
			}
			if s := p.Stats(); s.Active != 0 {
				t.Fatalf("active calls %d after all settled", s.Active)
			}
		})
	}
}

// TestOnewayCountsAgainstMaxInflight fills a connection's in-flight limit
// with slow ONEWAY calls: the calls past the limit are refused (silently:
// ONEWAY gets no reply, not even an error) and never reach a gateway, an
// ordinary call gets OVERLOADED while the slots are held, and once the
// ONEWAY calls ran the connection takes calls again. ONEWAY calls refused
// for other reasons (no gateway serves them, the breaker is full) get no
// ERROR either.
func TestOnewayCountsAgainstMaxInflight(t *testing.T) {
	gs := startGateways(t, 1, nil)
	limited := startProxy(t, gs, func(c *Config) { c.Limits.MaxInflight = 3 })
	tight := startProxy(t, gs, func(c *Config) { c.Health.Breaker.MaxConcurrent = 1 })
	sleep := gatewaytest.Call{Target: "chaos@1.Chaos.Sleep", Args: []any{300},
		Flags: protocol.FlagStateless | protocol.FlagOneway, CallID: 9}
	for _, binding := range gatewaytest.Bindings {
		t.Run(binding, func(t *testing.T) {
			dial := func(p *Proxy) *gatewaytest.Peer {
				addr := p.Addrs().TCP
				if binding == "ws" {
					addr = p.Addrs().WS
				}
				a := gatewaytest.Dial(t, binding, addr, gatewaytest.Options{})
				a.Hello(0, protocol.SessionID{})
				return a
			}
			a := dial(limited)
			before := served(gs, "chaos@1")
			for range 10 {
				if err := a.Send(a.Frame(sleep)); err != nil {
					t.Fatal(err)
				}
			}
			f := a.Call(gatewaytest.Call{Target: "chaos@1.Chaos.Sleep", Args: []any{1}, Flags: protocol.FlagStateless})
			gatewaytest.ExpectError(t, f, protocol.CodeOverloaded)
			proctest.Eventually(t, 5*time.Second, "ONEWAY sleeps settled", func() bool { return limited.Stats().Active == 0 })
			if got := served(gs, "chaos@1") - before; got != 3 {
				t.Fatalf("gateway ran %d ONEWAY sleeps, want the 3 the in-flight limit admitted", got)
			}
			unknown := gatewaytest.Call{Target: "nope@1.X.Y", Flags: protocol.FlagStateless | protocol.FlagOneway}
			if err := a.Send(a.Frame(unknown)); err != nil {
				t.Fatal(err)
			}
			expectSilence(t, a)
			if f := a.Call(getOrderCall); f == nil || f.Type != protocol.TypeResult {
				t.Fatalf("a call after the ONEWAY calls ran: %s", gatewaytest.Describe(f))
			}

			b := dial(tight)
			for range 2 {
				if err := b.Send(b.Frame(sleep)); err != nil {
					t.Fatal(err)
				}
			}
			expectSilence(t, b) // the second met a full breaker: CIRCUIT_OPEN, unsaid
			proctest.Eventually(t, 5*time.Second, "ONEWAY sleep settled", func() bool { return tight.Stats().Active == 0 })
			if f := b.Call(getOrderCall); f == nil || f.Type != protocol.TypeResult {
				t.Fatalf("a call once the breaker has room: %s", gatewaytest.Describe(f))
			}
		})
	}
}
