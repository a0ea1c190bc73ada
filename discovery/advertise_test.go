package discovery

import (
	"net"
	"testing"
)

// TestWildcardListenersAdvertised starts a gateway whose listeners are
// bound to wildcard addresses and whose gossip is on loopback: it
// announces the gossip's IP for them (a peer dialing [::]:8990 would reach
// itself), keeps a listener bound to a specific IP as it is, and its peer
// sees exactly that.
func TestWildcardListenersAdvertised(t *testing.T) {
	awaitMemberlistExit(t)
	gw := startNode(t, "gw1", RoleGateway, nil, func(c *Config) {
		c.Local.Addrs = Addrs{TCP: "[::]:8990", WS: "0.0.0.0:8888", HTTP: "127.0.0.2:8889"}
	})
	want := Addrs{TCP: "127.0.0.1:8990", WS: "127.0.0.1:8888", HTTP: "127.0.0.2:8889", Gossip: gw.LocalAddr()}
	if got := gw.Local().Addrs; got != want {
		t.Fatalf("local addrs %+v, want %+v", got, want)
	}
	px := startNode(t, "px1", RoleProxy, []string{gw.LocalAddr()}, nil)
	waitFor(t, converge, "the proxy to see gw1's advertised addresses", func() bool {
		for _, m := range px.Members() {
			if m.Name == "gw1" {
				return m.Addrs == want
			}
		}
		return false
	})
}

// TestWildcardGossipAdvertisesPrivateIP binds gossip and listeners to the
// wildcard address with no advertise address: the member announces a
// dialable IP of this machine, the same for gossip and listeners, never
// 0.0.0.0 or ::. Nothing is dialed.
func TestWildcardGossipAdvertisesPrivateIP(t *testing.T) {
	awaitMemberlistExit(t)
	g := startNode(t, "gw1", RoleGateway, nil, func(c *Config) {
		c.BindAddr = "0.0.0.0:0"
		c.Local.Addrs = Addrs{TCP: "[::]:8990", HTTP: ":8889"}
	})
	gh, _, err := net.SplitHostPort(g.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	ip := net.ParseIP(gh)
	if ip == nil || ip.IsUnspecified() || ip.IsLoopback() {
		t.Fatalf("gossip advertises %s", g.LocalAddr())
	}
	local := g.Local().Addrs
	if local.TCP != net.JoinHostPort(gh, "8990") || local.HTTP != net.JoinHostPort(gh, "8889") {
		t.Fatalf("listeners advertised as %+v; gossip is at %s", local, g.LocalAddr())
	}
}

// TestAdvertiseHostName gives a bind address and an advertise address as
// names: memberlist binds and advertises the resolved IP, and every
// listener is announced under the name as given, for peers to resolve.
func TestAdvertiseHostName(t *testing.T) {
	awaitMemberlistExit(t)
	gw := startNode(t, "gw1", RoleGateway, nil, func(c *Config) {
		c.BindAddr = "localhost:0"
		c.AdvertiseAddr = "localhost"
		c.Local.Addrs = Addrs{TCP: "127.0.0.1:8990", WS: "[::]:8888"}
	})
	if h, _, _ := net.SplitHostPort(gw.LocalAddr()); h != "127.0.0.1" {
		t.Fatalf("gossip at %s, want 127.0.0.1", gw.LocalAddr())
	}
	if got := gw.Local().Addrs; got.TCP != "localhost:8990" || got.WS != "localhost:8888" {
		t.Fatalf("listeners advertised as %+v", got)
	}
	px := startNode(t, "px1", RoleProxy, []string{"localhost:" + port(t, gw.LocalAddr())}, nil)
	waitFor(t, converge, "the proxy to join through a seed name and see gw1 under its name", func() bool {
		for _, m := range px.Members() {
			if m.Name == "gw1" {
				return m.Addrs.TCP == "localhost:8990"
			}
		}
		return false
	})
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
