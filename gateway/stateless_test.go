package gateway_test

import (
	"testing"

	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/protocol"
)

// TestDeclaredStateless: a function registered with Stateless is served
// without the STATELESS flag and without a session the gateway holds, on
// a direct connection and on a proxy connection alike, and creates no
// session; the same call of a function not declared so needs the session.
func TestDeclaredStateless(t *testing.T) {
	forBindings(t, func(t *testing.T, binding string) {
		e := start(t, nil)
		lost := protocol.NewSessionID()
		direct := gatewaytest.Dial(t, binding, e.addr(binding), gatewaytest.Options{})
		direct.Hello(protocol.FlagResume, lost) // a session this gateway does not hold
		proxy := gatewaytest.Dial(t, binding, e.addr(binding), gatewaytest.Options{})
		proxy.Hello(protocol.FlagProxy, protocol.SessionID{})
		tests := []struct {
			name     string
			p        *gatewaytest.Peer
			session  protocol.SessionID
			undecl   protocol.Code // what Info, not declared stateless, gets
			wantSess protocol.SessionID
		}{
			{"direct, connection's session", direct, protocol.SessionID{}, protocol.CodeSessionLost, lost},
			{"direct, unknown session", direct, protocol.NewSessionID(), protocol.CodeSessionLost, protocol.SessionID{}},
			{"proxy, unknown session", proxy, protocol.NewSessionID(), protocol.CodeNotOwner, protocol.SessionID{}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var m map[string]any
				gatewaytest.Result(t, tc.p.Call(gatewaytest.Call{Target: "test@1.T.Version", Session: tc.session}), &m)
				want := tc.wantSess
				if want.IsZero() {
					want = tc.session
				}
				if m["stateless"] != true || m["session"] != want.String() {
					t.Fatalf("Info in a declared-stateless call: %v, want stateless and session %s", m, want)
				}
				gatewaytest.ExpectError(t, tc.p.Call(gatewaytest.Call{Target: "test@1.T.Info", Session: tc.session}), tc.undecl)
			})
		}
		if n := e.g.Stats().Sessions; n != 0 {
			t.Fatalf("declared-stateless calls created %d sessions", n)
		}
	})
}
