package balancer

import (
	"net/http"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/protocol"
)

// TestProxyHTTPBadInput (issue 9, defect 11): malformed upgrade requests
// to the WebSocket listener, written byte for byte, get their HTTP status
// (400 for a bad Sec-WebSocket-Key or Content-Length with
// Transfer-Encoding, 431 for a 256 KiB header) instead of a 101 or a
// reset, and the connection closes; a well-formed one still gets 101.
func TestProxyHTTPBadInput(t *testing.T) {
	gs := startGateways(t, 1, nil)
	p := startProxy(t, gs, nil)
	addr := p.Addrs().WS
	for _, a := range gatewaytest.HTTPAbuses {
		t.Run(a.Name, func(t *testing.T) {
			status, br, nc := gatewaytest.RawHTTP(t, addr, a.Request)
			if status != a.Status {
				t.Fatalf("answered %d, want %d", status, a.Status)
			}
			gatewaytest.ExpectClosed(t, nc, br, 5*time.Second)
		})
	}
	t.Run("well-formed", func(t *testing.T) {
		if status, _, _ := gatewaytest.RawHTTP(t, addr, gatewaytest.Upgrade("/ws", gatewaytest.ValidKey, "", "")); status != http.StatusSwitchingProtocols {
			t.Fatalf("answered %d, want 101", status)
		}
	})
}

// TestProxyHugeWSFrameHeader (issue 9, defect 11): a WebSocket frame
// header declaring 2^40 bytes is refused at once, with close code 1009
// (message too big), and the connection closes, long before the HELLO
// timeout would have closed it.
func TestProxyHugeWSFrameHeader(t *testing.T) {
	gs := startGateways(t, 1, nil)
	p := startProxy(t, gs, nil)
	if code := gatewaytest.HugeFrameHeader(t, p.Addrs().WS, 2*time.Second); code != websocket.CloseMessageTooBig {
		t.Fatalf("close code %d, want %d", code, websocket.CloseMessageTooBig)
	}
}

// TestProxyWSEarlyHello: a HELLO sent in the same write as the upgrade
// request (before the 101) is read and answered with WELCOME. The WS
// listener lets go of its request reader after the upgrade
// (httpserver.NewUpgrading); bytes it had already read must not be lost.
func TestProxyWSEarlyHello(t *testing.T) {
	gs := startGateways(t, 1, nil)
	p := startProxy(t, gs, nil)
	if f := gatewaytest.EarlyHello(t, p.Addrs().WS); f.Type != protocol.TypeWelcome {
		t.Fatalf("answered %s, want WELCOME", gatewaytest.Describe(f))
	}
}
