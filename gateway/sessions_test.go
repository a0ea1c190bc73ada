package gateway_test

import (
	"testing"
	"time"

	"github.com/graftlb/graftlb/clock"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/protocol"
)

func TestSessionTTL(t *testing.T) {
	forBindings(t, func(t *testing.T, binding string) {
		clk := clock.NewFake()
		e := start(t, func(c *gatewayConfig) {
			c.Clock = clk
			c.SessionTTL = time.Minute
		})
		tests := []struct {
			name     string
			flags    protocol.Flags // of the HELLO
			wantCode protocol.Code
		}{
			{"client connection", 0, protocol.CodeSessionLost},
			{"proxy connection", protocol.FlagProxy, protocol.CodeNotOwner},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				p := gatewaytest.Dial(t, binding, e.addr(binding), gatewaytest.Options{})
				p.Hello(tc.flags, protocol.SessionID{})
				sid := protocol.NewSessionID()
				obj := newCart(t, p, gatewaytest.Call{Session: sid, Flags: protocol.FlagNewSession})
				items := gatewaytest.Call{Target: "cart@1.Cart.Items", Session: sid, Object: obj}

				// Each call restarts the idle timer.
				for i := 0; i < 3; i++ {
					clk.Advance(59 * time.Second)
					gatewaytest.Result(t, p.Call(items), nil)
				}
				// A session PING does too.
				clk.Advance(59 * time.Second)
				_ = p.Send(&protocol.Frame{Type: protocol.TypePing, CallID: 1, Session: sid})
				if f := p.Next(); f == nil || f.Type != protocol.TypePong {
					t.Fatalf("got %s, want PONG", gatewaytest.Describe(f))
				}
				clk.Advance(59 * time.Second)
				gatewaytest.Result(t, p.Call(items), nil)

				clk.Advance(time.Minute)
				gatewaytest.ExpectError(t, p.Call(items), tc.wantCode)
				// A new session with the same id starts empty.
				newCart(t, p, gatewaytest.Call{Session: sid, Flags: protocol.FlagNewSession})
			})
		}
		t.Run("connection's own session", func(t *testing.T) {
			p := e.dial(t, binding)
			obj := newCart(t, p, gatewaytest.Call{})
			clk.Advance(2 * time.Minute)
			// Created once on this connection: now lost, not silently re-created.
			gatewaytest.ExpectError(t, p.Call(gatewaytest.Call{Target: "cart@1.Cart.Total", Object: obj}), protocol.CodeSessionLost)
			gatewaytest.ExpectError(t, p.Call(gatewaytest.Call{Target: "cart@1.Cart.$new"}), protocol.CodeSessionLost)
		})
		t.Run("janitor frees expired sessions", func(t *testing.T) {
			clk.Advance(10 * time.Minute)
			eventually(t, "sessions collected", func() bool {
				clk.Advance(10 * time.Second) // fire the janitor's ticker again if it was busy
				return e.g.Stats().Sessions == 0
			})
		})
	})
}

func TestNewSession(t *testing.T) {
	forBindings(t, func(t *testing.T, binding string) {
		e := start(t, nil)
		cartNew := "cart@1.Cart.$new"
		tests := []struct {
			name     string
			hello    protocol.Flags
			call     gatewaytest.Call
			wantCode protocol.Code
		}{
			{"own session is new: created lazily", 0, gatewaytest.Call{Target: cartNew}, 0},
			{"unknown session without NEW_SESSION", 0, gatewaytest.Call{Target: cartNew, Session: protocol.NewSessionID()}, protocol.CodeSessionLost},
			{"unknown session on a proxy connection", protocol.FlagProxy, gatewaytest.Call{Target: cartNew, Session: protocol.NewSessionID()}, protocol.CodeNotOwner},
			{"NEW_SESSION creates it", 0, gatewaytest.Call{Target: cartNew, Session: protocol.NewSessionID(), Flags: protocol.FlagNewSession}, 0},
			{"NEW_SESSION on a proxy connection", protocol.FlagProxy, gatewaytest.Call{Target: cartNew, Session: protocol.NewSessionID(), Flags: protocol.FlagNewSession}, 0},
			{"stateless calls need no session", protocol.FlagProxy, gatewaytest.Call{Target: "orders@1.Orders.GetOrder", Args: []any{"o"}, Session: protocol.NewSessionID(), Flags: stateless}, 0},
			{"$new cannot be STATELESS", 0, gatewaytest.Call{Target: cartNew, Flags: stateless | protocol.FlagNewSession}, protocol.CodeBadArgs},
			{"instance calls cannot be STATELESS", 0, gatewaytest.Call{Target: "cart@1.Cart.Total", Object: 1, Flags: stateless}, protocol.CodeBadArgs},
			{"reserved method", 0, gatewaytest.Call{Target: "cart@1.Cart.$drop"}, protocol.CodeNotFound},
			{"type without constructor", 0, gatewaytest.Call{Target: "orders@1.Orders.$new"}, protocol.CodeNotFound},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				before := e.g.Stats().Sessions
				p := gatewaytest.Dial(t, binding, e.addr(binding), gatewaytest.Options{})
				p.Hello(tc.hello, protocol.SessionID{})
				f := p.Call(tc.call)
				if tc.wantCode != 0 {
					gatewaytest.ExpectError(t, f, tc.wantCode)
					if n := e.g.Stats().Sessions; n != before {
						t.Fatalf("a refused call changed the session count from %d to %d", before, n)
					}
					return
				}
				gatewaytest.Result(t, f, nil)
				want := before + 1
				if tc.call.Flags.Has(stateless) {
					want = before
				}
				if n := e.g.Stats().Sessions; n != want {
					t.Fatalf("sessions %d, want %d", n, want)
				}
			})
		}
		t.Run("pipelined first calls share the new session", func(t *testing.T) {
			p := gatewaytest.Dial(t, binding, e.addr(binding), gatewaytest.Options{})
			p.Hello(protocol.FlagProxy, protocol.SessionID{})
			sid := protocol.NewSessionID()
			c := gatewaytest.Call{Target: cartNew, Session: sid, Flags: protocol.FlagNewSession}
			_, a := p.Start(c)
			_, b := p.Start(c)
			fa, fb := p.Wait(a), p.Wait(b)
			gatewaytest.Result(t, fa, nil)
			gatewaytest.Result(t, fb, nil)
			if fa.Object == fb.Object {
				t.Fatalf("both carts got object %d", fa.Object)
			}
			// Both objects are in the one session.
			for _, obj := range []uint64{fa.Object, fb.Object} {
				gatewaytest.Result(t, p.Call(gatewaytest.Call{Target: "cart@1.Cart.Total", Session: sid, Object: obj}), nil)
			}
		})
		t.Run("sessions are shared across connections", func(t *testing.T) {
			a := gatewaytest.Dial(t, binding, e.addr(binding), gatewaytest.Options{})
			a.Hello(protocol.FlagProxy, protocol.SessionID{})
			b := gatewaytest.Dial(t, binding, e.addr(binding), gatewaytest.Options{})
			b.Hello(protocol.FlagProxy, protocol.SessionID{})
			sid := protocol.NewSessionID()
			obj := newCart(t, a, gatewaytest.Call{Session: sid, Flags: protocol.FlagNewSession})
			gatewaytest.Result(t, b.Call(gatewaytest.Call{Target: "cart@1.Cart.AddItem", Session: sid, Object: obj, Args: []any{"x", 1}}), nil)
		})
	})
}
