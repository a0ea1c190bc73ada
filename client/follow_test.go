package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/internal/testgw"
)

// TestFollowMovedSession connects straight to a gateway (no proxy), keeps
// a cart in the connection's session, and drains that gateway: it hands
// the session to the next gateway of its pool, the next call is answered
// MOVED, and the Conn follows it there (resuming the session) and resends
// the call, which finds the cart as it was. The caller sees no error.
func TestFollowMovedSession(t *testing.T) {
	gs := testgw.GossipPool(t, []string{"gw1", "gw2"}, func(c *gateway.Config) { c.DrainGrace = time.Minute })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, testgw.Targets(gs[0])["tcp"], client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	obj, err := c.Session().New(ctx, "cart@1", "Cart")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Call[cart.Added](ctx, obj, "AddItem", "pen", int64(250)); err != nil {
		t.Fatal(err)
	}
	if err := gs[0].Drain(ctx); err != nil {
		t.Fatalf("drain: %v", err)
	}
	tot, err := client.Call[cart.TotalResult](ctx, obj, "Total")
	if err != nil {
		t.Fatalf("a call after the gateway handed the session over: %v", err)
	}
	if tot.Total != 250 || tot.Gateway != "gw2" {
		t.Fatalf("after the move: total %d on %s, want 250 on gw2", tot.Total, tot.Gateway)
	}
	if s := c.Server(); s != "gw2" {
		t.Fatalf("the Conn is on %s, want gw2", s)
	}
}
