package passthrough

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/internal/listener"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/internal/testgw"
	"github.com/graftlb/graftlb/protocol"

	"github.com/graftlb/graftlb/affinity"
	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/health"
)

// getOrderCall is a stateless call any gateway answers.
var getOrderCall = gatewaytest.Call{Target: "orders@1.Orders.GetOrder", Args: []any{"o-1"}, Flags: protocol.FlagStateless}

// startGateways runs n embedded gateways gw1..gwN.
func startGateways(t *testing.T, n int) []*gateway.Gateway {
	t.Helper()
	gs := make([]*gateway.Gateway, n)
	for i := range gs {
		gs[i] = testgw.Start(t, fmt.Sprintf("gw%d", i+1), nil)
	}
	return gs
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// testCheck checks often and decides on one probe, so that tests see a
// backend die or come back within a few intervals.
var testCheck = health.CheckerConfig{Interval: 50 * time.Millisecond, Timeout: 500 * time.Millisecond, Fall: 1, Rise: 1}

// startPassthrough fronts gs in pass-through mode: WebSocket backends with
// their /status listener, as real GG instances are described.
func startPassthrough(t *testing.T, gs []*gateway.Gateway, key string, mutate ...func(*Config)) *Proxy {
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
	cfg := Config{TCP: "127.0.0.1:0", WS: "127.0.0.1:0", Key: ks, Check: testCheck}
	for _, m := range mutate {
		m(&cfg)
	}
	pt, err := New(cfg, discovery.NewStatic(ms))
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
	gs := startGateways(t, 3)
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
	gs := startGateways(t, 3)
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

// TestPassthroughAddrKeyBehindBalancer puts pass-through behind a
// balancer that sends the PROXY protocol: the addr key now sees each
// client, so clients spread over the backends, where without the header
// every connection came from the balancer's one address and landed on
// one backend.
func TestPassthroughAddrKeyBehindBalancer(t *testing.T) {
	gs := startGateways(t, 3)
	var entries []string
	for _, g := range gs {
		entries = append(entries, fmt.Sprintf("tcp://%s#name=%s", g.Addrs().TCP, g.Name()))
	}
	ms, err := discovery.ParseBackends(entries)
	if err != nil {
		t.Fatal(err)
	}
	ks, _ := affinity.ParseKeySource("addr")
	pt, err := New(Config{TCP: "127.0.0.1:0", Key: ks, ProxyProtocol: listener.ProxyProtocol{Enabled: true}, Check: testCheck},
		discovery.NewStatic(ms))
	if err != nil {
		t.Fatal(err)
	}
	if err := pt.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pt.Close() })
	proctest.Eventually(t, 5*time.Second, "pass-through backends live", func() bool {
		n := 0
		for _, m := range pt.Pool() {
			if m.State == "ready" {
				n++
			}
		}
		return n == 3
	})
	spread := map[string]int{}
	for i := range 30 {
		client := fmt.Sprintf("10.0.%d.%d", i/7, i)
		first, err := gatewaytest.WelcomeOver(gatewaytest.DialWithHeader(t, "127.0.0.1", pt.Addrs().TCP, client, 1))
		if err != nil {
			t.Fatal(err)
		}
		again, err := gatewaytest.WelcomeOver(gatewaytest.DialWithHeader(t, "127.0.0.1", pt.Addrs().TCP, client, 2))
		if err != nil || again != first {
			t.Fatalf("client %s: first on %s, then on %s (%v): the addr key must stick", client, first, again, err)
		}
		spread[first]++
	}
	if len(spread) < 3 {
		t.Fatalf("30 clients behind a balancer spread %v; want every backend used", spread)
	}
	// Every client closed its connection: the counts go back to zero.
	proctest.Eventually(t, 5*time.Second, "every connection released", func() bool {
		if pt.Stats().Conns != 0 {
			return false
		}
		for _, b := range pt.Pool() {
			if b.Conns != 0 {
				return false
			}
		}
		return len(pt.Pool()) == 3
	})
}

// TestPassthroughOversizeHead (issue 9, defect 11): pass-through mode
// answers a request head over its 16 KiB limit with 431 and a clean
// close, not 400 and a reset.
func TestPassthroughOversizeHead(t *testing.T) {
	gs := startGateways(t, 1)
	pt := startPassthrough(t, gs, "addr")
	big := gatewaytest.HTTPAbuses[len(gatewaytest.HTTPAbuses)-1]
	status, br, nc := gatewaytest.RawHTTP(t, pt.Addrs().WS, big.Request)
	if status != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("answered %d, want 431", status)
	}
	gatewaytest.ExpectClosed(t, nc, br, 5*time.Second)
}

// TestPassthroughMaxConnsPerSource (issue 9, defect 7): pass-through mode
// closes the N+1st connection from one source at once, admits another
// source, and admits the first again after one of its connections closed.
func TestPassthroughMaxConnsPerSource(t *testing.T) {
	const limit = 2
	for _, binding := range gatewaytest.Bindings {
		t.Run(binding, func(t *testing.T) {
			gs := startGateways(t, 1)
			pt := startPassthrough(t, gs, "addr", func(c *Config) { c.MaxConnsPerSource = limit })
			addr := map[string]string{"tcp": pt.Addrs().TCP, "ws": pt.Addrs().WS}[binding]
			first := make([]*gatewaytest.Peer, limit)
			for i := range first {
				first[i] = gatewaytest.Dial(t, "tcp", pt.Addrs().TCP, gatewaytest.Options{LocalIP: "127.0.0.1"})
				first[i].Hello(0, protocol.SessionID{})
			}
			// The refused connection is closed before any byte: over
			// WebSocket the handshake itself fails.
			if binding == "tcp" {
				c := gatewaytest.Dial(t, binding, addr, gatewaytest.Options{LocalIP: "127.0.0.1"})
				if f := c.Next(); f != nil {
					t.Fatalf("refused connection got %s", gatewaytest.Describe(f))
				}
				c.WaitClosed()
			} else {
				d := websocket.Dialer{HandshakeTimeout: gatewaytest.Timeout,
					NetDial: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}).Dial}
				if ws, _, err := d.Dial("ws://"+addr+protocol.WSPath, nil); err == nil {
					ws.Close()
					t.Fatal("the connection over the limit was upgraded")
				}
			}
			other := gatewaytest.Dial(t, binding, addr, gatewaytest.Options{LocalIP: "127.0.0.2"})
			other.Hello(0, protocol.SessionID{})
			first[0].Close()
			proctest.Eventually(t, 5*time.Second, "the closed connection to be released", func() bool {
				return pt.Stats().Conns == limit
			})
			again := gatewaytest.Dial(t, binding, addr, gatewaytest.Options{LocalIP: "127.0.0.1"})
			again.Hello(0, protocol.SessionID{})
			gatewaytest.Result(t, again.Call(getOrderCall), nil)
		})
	}
}
