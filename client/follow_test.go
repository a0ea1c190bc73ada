package client_test

import (
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/internal/testgw"
	"github.com/rs/zerolog"
)

// TestFollowMovedSession connects straight to a gateway (no proxy), keeps
// a cart in the connection's session, and drains that gateway: it hands
// the session to the next gateway of its pool, the next call is answered
// MOVED, and the Conn follows it there (resuming the session) and resends
// the call, which finds the cart as it was. The caller sees no error.
func TestFollowMovedSession(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	nop := zerolog.Nop()
	var gs []*gateway.Gateway
	var seed string
	var members []*discovery.Membership
	for _, name := range []string{"gw1", "gw2"} {
		g := testgw.Start(t, name, func(c *gateway.Config) { c.DrainGrace = time.Minute })
		cfg := discovery.Config{BindAddr: "127.0.0.1:0", Key: key, Logger: &nop}
		if seed != "" {
			cfg.Join = []string{seed}
		}
		m, err := discovery.JoinGateway(g, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() })
		if seed == "" {
			seed = m.Gossip().LocalAddr()
		}
		members = append(members, m)
		gs = append(gs, g)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(members[0].Gossip().Snapshot().Gateways()) < 2 || len(members[1].Gossip().Snapshot().Gateways()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the gossip pool never formed")
		}
		time.Sleep(10 * time.Millisecond)
	}
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
