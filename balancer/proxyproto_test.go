package balancer

import (
	"fmt"
	"net/url"
	"testing"

	"github.com/fasthttp/websocket"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/protocol"
)

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
		nc := gatewaytest.DialWithHeader(t, "127.0.0.1", p.Addrs().TCP, client, v)
		if _, err := gatewaytest.WelcomeOver(nc); err != nil {
			t.Fatalf("v%d header from an allowed address: %v", v, err)
		}
		p.sessions.srcMu.Lock()
		_, seen := p.sessions.bySource[client]
		p.sessions.srcMu.Unlock()
		if !seen {
			t.Fatalf("v%d header: the connection is not counted under %s", v, client)
		}
	}
	if _, err := gatewaytest.WelcomeOver(gatewaytest.DialWithHeader(t, "127.0.0.1", p.Addrs().TCP, "", 0)); err == nil {
		t.Fatal("a connection without a header was served")
	}
	if _, err := gatewaytest.WelcomeOver(gatewaytest.DialWithHeader(t, "127.0.0.2", p.Addrs().TCP, "10.9.8.7", 1)); err == nil {
		t.Fatal("a header from an address outside proxy_protocol.from was believed")
	}

	// WebSocket: the header, then the upgrade.
	nc := gatewaytest.DialWithHeader(t, "127.0.0.1", p.Addrs().WS, "10.9.8.3", 2)
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
