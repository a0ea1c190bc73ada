package balancer

import (
	"context"
	"fmt"
	"github.com/graftlb/graftlb/internal/proctest"
	"net/http"
	"testing"
	"time"

	"github.com/graftlb/graftlb/affinity"
	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/health"
)

// startPassthrough fronts gs in pass-through mode: WebSocket backends with
// their /status listener, as real GG instances are described.
func startPassthrough(t *testing.T, gs []*gateway.Gateway, key string, mutate ...func(*PassthroughConfig)) *Passthrough {
	t.Helper()
	var entries []string
	for _, g := range gs {
		a := g.Addrs()
		entries = append(entries, fmt.Sprintf("ws://%s/ws#name=%s,http=%s", a.WS, g.Name(), a.HTTP),
			fmt.Sprintf("tcp://%s#name=%s", a.TCP, g.Name()))
	}
	ms, err := discovery.ParseBackends(entries)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := affinity.ParseKeySource(key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := PassthroughConfig{TCP: "127.0.0.1:0", WS: "127.0.0.1:0", Key: ks,
		Check: health.CheckerConfig{Interval: 50 * time.Millisecond, Timeout: 500 * time.Millisecond, Fall: 1, Rise: 1}}
	for _, m := range mutate {
		m(&cfg)
	}
	pt, err := NewPassthrough(cfg, discovery.NewStatic(ms))
	if err != nil {
		t.Fatal(err)
	}
	if err := pt.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pt.Close() })
	proctest.Eventually(t, 5*time.Second, "pass-through table", func() bool {
		pk := pt.snap.Load()
		n := 0
		for _, a := range pk.alive {
			if a {
				n++
			}
		}
		return n == len(gs)
	})
	return pt
}

// serverOf dials target and returns the gateway that answered HELLO.
func serverOf(t *testing.T, target string) (string, error) {
	t.Helper()
	c, err := client.Dial(context.Background(), target, client.Options{DialTimeout: 2 * time.Second})
	if err != nil {
		return "", err
	}
	defer c.Close()
	// A real call proves the whole connection is forwarded, not just HELLO.
	if _, err := c.Session().CallStateless(testCtx(t), "orders@1.Orders.GetOrder", "o-1"); err != nil {
		return "", err
	}
	return c.Server(), nil
}

func TestPassthroughWebSocketAffinity(t *testing.T) {
	gs := startGateways(t, 3, nil)
	pt := startPassthrough(t, gs, "query:session")
	ws := "ws://" + pt.Addrs().WS + "/ws?session="
	owners := map[string]string{}
	spread := map[string]int{}
	for k := 0; k < 30; k++ {
		key := fmt.Sprintf("user-%d", k)
		first, err := serverOf(t, ws+key)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			again, err := serverOf(t, ws+key)
			if err != nil {
				t.Fatal(err)
			}
			if again != first {
				t.Fatalf("key %s went to %s, then %s", key, first, again)
			}
		}
		owners[key] = first
		spread[first]++
	}
	t.Logf("30 keys over gateways: %v", spread)
	if len(spread) != 3 {
		t.Errorf("30 keys reached %d gateways, want 3", len(spread))
	}

	// A backend dies: an open connection to it ends, new connections with
	// its keys go to live ones, other keys do not move.
	var victim *gateway.Gateway
	for _, g := range gs {
		if g.Name() == owners["user-0"] {
			victim = g
		}
	}
	open, err := client.Dial(context.Background(), ws+"user-0", client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	_ = victim.Close()
	if _, err := open.Session().CallStateless(testCtx(t), "orders@1.Orders.GetOrder", "o-1"); err == nil {
		t.Fatal("a call on a connection to the dead backend succeeded")
	}
	proctest.Eventually(t, 5*time.Second, "the dead backend marked down", func() bool {
		st, _ := pt.checker.State(victim.Name())
		return st == health.Down
	})
	for key, owner := range owners {
		got, err := serverOf(t, ws+key)
		if err != nil {
			t.Fatalf("key %s after %s died: %v", key, victim.Name(), err)
		}
		if owner != victim.Name() && got != owner {
			t.Errorf("key %s moved from live %s to %s", key, owner, got)
		}
		if got == victim.Name() {
			t.Errorf("key %s still sent to the dead %s", key, got)
		}
	}

	// No live backend: WebSocket upgrades are refused with 503.
	for _, g := range gs {
		_ = g.Close()
	}
	proctest.Eventually(t, 5*time.Second, "every backend down", func() bool {
		for _, g := range gs {
			if st, _ := pt.checker.State(g.Name()); st != health.Down {
				return false
			}
		}
		return true
	})
	resp, err := http.Get("http://" + pt.Addrs().WS + "/ws")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("with no live backend: HTTP %d, want 503", resp.StatusCode)
	}
	if _, err := serverOf(t, ws+"user-1"); err == nil {
		t.Fatal("dial succeeded with no live backend")
	}
}

func TestPassthroughTCPByClientAddress(t *testing.T) {
	gs := startGateways(t, 3, nil)
	pt := startPassthrough(t, gs, "addr")
	target := "tcp://" + pt.Addrs().TCP
	first, err := serverOf(t, target)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if got, err := serverOf(t, target); err != nil || got != first {
			t.Fatalf("connection %d from the same address went to %s (%v), want %s", i, got, err, first)
		}
	}
}
