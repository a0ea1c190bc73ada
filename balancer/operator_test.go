package balancer

import (
	"testing"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/protocol"
)

// cartOwner creates a cart in a new session of c and returns the session
// and the gateway that holds it.
func cartOwner(t *testing.T, c *client.Conn) (*client.Session, *client.Object, string) {
	t.Helper()
	ctx := testCtx(t)
	s := c.NewSession()
	cart, err := s.New(ctx, "cart@1", "Cart")
	if err != nil {
		t.Fatal(err)
	}
	return s, cart, totalOwner(t, cart)
}

func totalOwner(t *testing.T, cart *client.Object) string {
	t.Helper()
	res, err := cart.Call(testCtx(t), "Total")
	if err != nil {
		t.Fatal(err)
	}
	var tr struct {
		Gateway string `cbor:"gateway"`
	}
	if err := res.Decode(&tr); err != nil {
		t.Fatal(err)
	}
	return tr.Gateway
}

// TestDrainGateway: a gateway drained from the proxy's side gets no new
// session and no stateless call, while a session it holds keeps its calls
// there; undrained, it takes new sessions again. The gateway is not told.
func TestDrainGateway(t *testing.T) {
	gs := startGateways(t, 2, nil)
	p := startProxy(t, gs, nil)
	c := dialProxy(t, proxyTargets(p)["tcp"])
	var held *client.Object
	for held == nil {
		if _, cart, owner := cartOwner(t, c); owner == "gw1" {
			held = cart
		}
	}
	if err := p.DrainGateway("gw1", true); err != nil {
		t.Fatal(err)
	}
	if err := p.DrainGateway("nosuch", true); err != ErrUnknownGateway {
		t.Errorf("DrainGateway(nosuch) = %v, want ErrUnknownGateway", err)
	}
	for i := 0; i < 20; i++ {
		if _, _, owner := cartOwner(t, c); owner != "gw2" {
			t.Fatalf("new session %d placed on %s while gw1 is drained", i, owner)
		}
		res, err := c.Session().CallStateless(testCtx(t), "orders@1.Orders.GetOrder", "o-1")
		if err != nil {
			t.Fatal(err)
		}
		var o struct {
			Gateway string `cbor:"gateway"`
		}
		if err := res.Decode(&o); err != nil || o.Gateway != "gw1" && o.Gateway != "gw2" {
			t.Fatalf("stateless answer %+v, %v", o, err)
		} else if o.Gateway == "gw1" {
			t.Fatalf("stateless call %d served by drained gw1", i)
		}
	}
	if owner := totalOwner(t, held); owner != "gw1" {
		t.Errorf("the session gw1 held moved to %s", owner)
	}
	if pm := p.Pool()[0]; !pm.AdminDrain || pm.Name != "gw1" {
		t.Errorf("/pool shows gw1 as %+v, want admin_drain", pm)
	}
	if st := gs[0].State().String(); st != "ready" {
		t.Errorf("gw1 itself is %s, want ready: a proxy-side drain does not touch it", st)
	}
	if err := p.DrainGateway("gw1", false); err != nil {
		t.Fatal(err)
	}
	for found := false; !found; {
		_, _, owner := cartOwner(t, c)
		found = owner == "gw1"
	}
}

// TestSessionInfo: a session found by the NOT_OWNER walk shows its
// gateway, confirmed, its preference list, and the gateway skipped and why.
func TestSessionInfo(t *testing.T) {
	gs := startGateways(t, 2, nil)
	a := startProxy(t, gs, nil)
	b := startProxy(t, gs, nil)
	ca := dialProxy(t, proxyTargets(a)["tcp"])
	cb := dialProxy(t, proxyTargets(b)["tcp"])
	if err := a.DrainGateway("gw1", true); err != nil {
		t.Fatal(err)
	}
	walked := 0
	for i := 0; i < 60 && walked < 3; i++ {
		s, _, owner := cartOwner(t, ca)
		if owner != "gw2" {
			t.Fatalf("placed on %s", owner)
		}
		// Through proxy b, which does not know the session: its walk asks
		// the first gateway of the preference list first.
		rs := cb.ResumeSession(s.ID())
		if owner := totalOwner(t, rs.Object("cart@1", "Cart", 1)); owner != "gw2" {
			t.Fatalf("proxy b found the session on %s", owner)
		}
		info, ok := b.Session(s.ID())
		if !ok {
			t.Fatal("proxy b does not know the session it routed")
		}
		if info.Gateway != "gw2" || !info.Confirmed || len(info.Preference) != 2 {
			t.Fatalf("session info %+v", info)
		}
		if info.Preference[0] == "gw1" {
			walked++
			if len(info.Skipped) != 1 || info.Skipped[0].Gateway != "gw1" || info.Skipped[0].Code != protocol.CodeNotOwner.String() {
				t.Errorf("skipped %+v, want gw1 NOT_OWNER", info.Skipped)
			}
		} else if len(info.Skipped) != 0 {
			t.Errorf("skipped %+v for a session whose first choice holds it", info.Skipped)
		}
	}
	if walked == 0 {
		t.Error("no session of 60 had gw1 first: nothing walked")
	}
	if _, ok := b.Session(protocol.NewSessionID()); ok {
		t.Error("Session found an unknown id")
	}
}
