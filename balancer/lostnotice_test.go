package balancer

import (
	"testing"
	"time"

	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/protocol"
)

// TestSessionLostNotice kills the gateway holding a client's sessions
// while the client makes no call: the client gets one "$session_lost"
// EVENT per session at once (SPEC.md section 7), and the sessions' next
// calls fail with SESSION_LOST. Sessions on the surviving gateway hear
// nothing and keep working.
func TestSessionLostNotice(t *testing.T) {
	for _, binding := range gatewaytest.Bindings {
		t.Run(binding, func(t *testing.T) {
			gs := startGateways(t, 2, nil)
			p := startProxy(t, gs, nil)
			addr := p.Addrs().TCP
			if binding == "ws" {
				addr = p.Addrs().WS
			}
			a := gatewaytest.Dial(t, binding, addr, gatewaytest.Options{})
			a.Hello(0, protocol.SessionID{})
			type cart struct {
				id  protocol.SessionID
				obj uint64
				gw  string
			}
			var carts []cart
			for range 16 {
				id := protocol.NewSessionID()
				f := a.Call(gatewaytest.Call{Target: "cart@1.Cart.$new", Session: id, Flags: protocol.FlagNewSession})
				if f == nil || f.Type != protocol.TypeResult {
					t.Fatalf("$new: %s", gatewaytest.Describe(f))
				}
				s := p.sessions.lookup(id)
				s.mu.Lock()
				gw := s.owner.name
				s.mu.Unlock()
				carts = append(carts, cart{id, f.Object, gw})
			}
			victim := gs[1]
			want := map[protocol.SessionID]bool{}
			for _, c := range carts {
				if c.gw == victim.Name() {
					want[c.id] = true
				}
			}
			if len(want) == 0 || len(want) == len(carts) {
				t.Fatalf("carts on %s: %d of %d; want some on each gateway", victim.Name(), len(want), len(carts))
			}
			_ = victim.Close()
			got := map[protocol.SessionID]bool{}
			deadline := time.Now().Add(5 * time.Second)
			for len(got) < len(want) && time.Now().Before(deadline) {
				f := a.NextWithin(time.Until(deadline))
				if f == nil {
					break
				}
				if f.Type != protocol.TypeEvent || string(f.Method) != protocol.EventSessionLost {
					t.Fatalf("got %s, want EVENT %s", gatewaytest.Describe(f), protocol.EventSessionLost)
				}
				if e := protocol.ErrorFromBody(f.Body); e.Code != protocol.CodeSessionLost {
					t.Fatalf("notice body %v, want SESSION_LOST", e)
				}
				if !want[f.Session] || got[f.Session] {
					t.Fatalf("notice for session %s: not on %s, or twice", f.Session, victim.Name())
				}
				got[f.Session] = true
			}
			if len(got) != len(want) {
				t.Fatalf("%d notices, want %d", len(got), len(want))
			}
			for _, c := range carts {
				f := a.Call(gatewaytest.Call{Target: "cart@1.Cart.Total", Session: c.id, Object: c.obj})
				if want[c.id] {
					gatewaytest.ExpectError(t, f, protocol.CodeSessionLost)
				} else if f == nil || f.Type != protocol.TypeResult {
					t.Fatalf("a cart on the surviving gateway: %s", gatewaytest.Describe(f))
				}
			}
			expectSilence(t, a) // one notice per session, no more
			if n := p.Stats().LostNotices; n != int64(len(want)) {
				t.Fatalf("lost_notices %d, want %d", n, len(want))
			}
		})
	}
}
