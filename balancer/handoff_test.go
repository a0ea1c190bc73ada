package balancer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/internal/testgw"
)

// TestDrainHandsSessionsOverThroughTwoProxies is scale-in as an operator
// does it: three gateways joined by gossip behind two proxies, one of them
// holding 200 carts that then sit idle; it drains (SIGTERM's Drain), and
// the carts pause for 5 s after its GOAWAY, longer than any quiet window.
// Every cart reads back exactly afterwards, through either proxy (the
// proxies rebound each on the gateway's MOVED), none is lost, and the
// drained gateway stopped within seconds, not at its drain grace.
func TestDrainHandsSessionsOverThroughTwoProxies(t *testing.T) {
	const carts = 200
	gs := testgw.GossipPool(t, []string{"gw1", "gw2", "gw3"}, func(c *gateway.Config) { c.DrainGrace = time.Minute })
	pa, pb := startProxy(t, gs, nil), startProxy(t, gs, nil)
	ctx := testCtx(t)
	ca, cb := dialProxy(t, proxyTargets(pa)["tcp"]), dialProxy(t, proxyTargets(pb)["ws"])

	// Carts, each with two items, placed through both proxies; count
	// those on the victim.
	victim := gs[1]
	type held struct {
		obj   *client.Object
		other *client.Object // the same cart through the other proxy
		total int64
	}
	var onVictim []held
	for i := 0; len(onVictim) < carts; i++ {
		c, o := ca, cb
		if i%2 == 1 {
			c, o = cb, ca
		}
		s := c.NewSession()
		obj, err := s.New(ctx, "cart@1", "Cart")
		if err != nil {
			t.Fatal(err)
		}
		var where string
		for k := range 2 {
			r, err := client.Call[cart.Added](ctx, obj, "AddItem", fmt.Sprintf("item%d", k), int64(i+k))
			if err != nil {
				t.Fatal(err)
			}
			where = r.Gateway
		}
		if where != victim.Name() {
			continue
		}
		other := o.ResumeSession(s.ID()).Object("cart@1", "Cart", obj.ID())
		onVictim = append(onVictim, held{obj: obj, other: other, total: int64(2*i + 1)})
	}

	began := time.Now()
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := victim.Drain(dctx); err != nil {
		t.Fatalf("drain: %v", err)
	}
	took := time.Since(began)
	if took > 10*time.Second {
		t.Fatalf("the drain took %v: it waited for its grace instead of handing the carts over", took)
	}
	time.Sleep(5 * time.Second) // the carts sit idle after the GOAWAY: the point of the test
	for i, h := range onVictim {
		for j, obj := range []*client.Object{h.obj, h.other} {
			tot, err := client.Call[cart.TotalResult](ctx, obj, "Total")
			if err != nil {
				t.Fatalf("cart %d through proxy %d after the drain: %v", i, j, err)
			}
			if tot.Total != h.total || tot.Gateway == victim.Name() {
				t.Fatalf("cart %d through proxy %d: total %d on %s, want %d elsewhere", i, j, tot.Total, tot.Gateway, h.total)
			}
		}
	}
	for _, p := range []*Proxy{pa, pb} {
		if st := p.Stats(); st.SessionsLost != 0 {
			t.Fatalf("a proxy lost %d sessions in the drain", st.SessionsLost)
		}
	}
	t.Logf("%d carts handed over in %v; proxies rebound %d and %d (MOVED)", carts, took.Round(time.Millisecond),
		pa.Stats().SessionsMoved, pb.Stats().SessionsMoved)
}
