package balancer

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/graftlb/graftlb/affinity"
	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/health"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/protocol"
	proxyproto "github.com/pires/go-proxyproto"
)

// dialWithHeader connects from local IP from to addr and sends a PROXY
// protocol header (version 1 or 2) naming client as the source; version 0
// sends none.
func dialWithHeader(t *testing.T, from, addr, client string, version byte) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	if version == 0 {
		return nc
	}
	src := &net.TCPAddr{IP: net.ParseIP(client), Port: 40000}
	h := proxyproto.HeaderProxyFromAddrs(version, src, nc.RemoteAddr())
	if _, err := h.WriteTo(nc); err != nil {
		t.Fatal(err)
	}
	return nc
}

// welcomeOver says HELLO over nc (TCP binding) and returns WELCOME's
// server name, or an error if the connection is refused or closed.
func welcomeOver(nc net.Conn) (string, error) {
	pc := protocol.NewStreamConn(nc, protocol.ConnOptions{})
	defer pc.Abort()
	body, _ := protocol.Marshal(protocol.Hello{Client: "proxyproto-test"})
	if err := pc.Send(&protocol.Frame{Type: protocol.TypeHello, Body: body}); err != nil {
		return "", err
	}
	_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	raw, err := pc.ReadFrame()
	if err != nil {
		return "", err
	}
	var f protocol.Frame
	if err := protocol.Decode(raw, &f); err != nil {
		return "", err
	}
	if f.Type != protocol.TypeWelcome {
		return "", fmt.Errorf("got %s", f.Type)
	}
	var w protocol.Welcome
	err = protocol.Unmarshal(f.Body, &w)
	return w.Server, err
}

// TestProxyProtocol enables the PROXY protocol for 127.0.0.1 only: a
// connection from there with a v1 or v2 header is served and counted
// under the client's address (its session quota is that address's);
// one without a header, or from another address (it could forge any
// client), is refused. The WebSocket listener takes the header too.
func TestProxyProtocol(t *testing.T) {
	gs := startGateways(t, 1, nil)
	p := startProxy(t, gs, func(c *Config) {
		c.ProxyProtocol = ProxyProtocol{Enabled: true, From: []string{"127.0.0.1/32"}}
	})
	for _, v := range []byte{1, 2} {
		client := fmt.Sprintf("10.9.8.%d", v)
		nc := dialWithHeader(t, "127.0.0.1", p.Addrs().TCP, client, v)
		if _, err := welcomeOver(nc); err != nil {
			t.Fatalf("v%d header from an allowed address: %v", v, err)
		}
		p.sessions.srcMu.Lock()
		_, seen := p.sessions.bySource[client]
		p.sessions.srcMu.Unlock()
		if !seen {
			t.Fatalf("v%d header: the connection is not counted under %s", v, client)
		}
	}
	if _, err := welcomeOver(dialWithHeader(t, "127.0.0.1", p.Addrs().TCP, "", 0)); err == nil {
		t.Fatal("a connection without a header was served")
	}
	if _, err := welcomeOver(dialWithHeader(t, "127.0.0.2", p.Addrs().TCP, "10.9.8.7", 1)); err == nil {
		t.Fatal("a header from an address outside proxy_protocol.from was believed")
	}

	// WebSocket: the header, then the upgrade.
	nc := dialWithHeader(t, "127.0.0.1", p.Addrs().WS, "10.9.8.3", 2)
	u, _ := url.Parse("ws://" + p.Addrs().WS + "/ws")
	ws, _, err := websocket.NewClient(nc, u, nil, 1024, 1024)
	if err != nil {
		t.Fatalf("WebSocket upgrade after a PROXY header: %v", err)
	}
	a := gatewaytest.Over(t, nil, ws, gatewaytest.Options{})
	a.Hello(0, protocol.SessionID{})
	if f := a.Call(getOrderCall); f == nil || f.Type != protocol.TypeResult {
		t.Fatalf("a call over WebSocket behind the PROXY protocol: %s", gatewaytest.Describe(f))
	}
}

// TestPassthroughAddrKeyBehindBalancer puts pass-through behind a
// balancer that sends the PROXY protocol: the addr key now sees each
// client, so clients spread over the backends, where without the header
// every connection came from the balancer's one address and landed on
// one backend.
func TestPassthroughAddrKeyBehindBalancer(t *testing.T) {
	gs := startGateways(t, 3, nil)
	var entries []string
	for _, g := range gs {
		entries = append(entries, fmt.Sprintf("tcp://%s#name=%s", g.Addrs().TCP, g.Name()))
	}
	ms, err := discovery.ParseBackends(entries)
	if err != nil {
		t.Fatal(err)
	}
	ks, _ := affinity.ParseKeySource("addr")
	pt, err := NewPassthrough(PassthroughConfig{TCP: "127.0.0.1:0", Key: ks, ProxyProtocol: ProxyProtocol{Enabled: true},
		Check: health.CheckerConfig{Interval: 50 * time.Millisecond, Timeout: 500 * time.Millisecond, Fall: 1, Rise: 1}},
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
		first, err := welcomeOver(dialWithHeader(t, "127.0.0.1", pt.Addrs().TCP, client, 1))
		if err != nil {
			t.Fatal(err)
		}
		again, err := welcomeOver(dialWithHeader(t, "127.0.0.1", pt.Addrs().TCP, client, 2))
		if err != nil || again != first {
			t.Fatalf("client %s: first on %s, then on %s (%v): the addr key must stick", client, first, again, err)
		}
		spread[first]++
	}
	if len(spread) < 3 {
		t.Fatalf("30 clients behind a balancer spread %v; want every backend used", spread)
	}
	if st := pt.Stats(); st.Conns < 0 {
		t.Fatalf("stats %+v", st)
	}
	if !strings.Contains(fmt.Sprint(pt.Pool()), "gw1") {
		t.Fatalf("pool %+v", pt.Pool())
	}
}
