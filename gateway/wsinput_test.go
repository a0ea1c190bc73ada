package gateway_test

import (
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/protocol"
)

// TestHTTPBadInput (issue 9, defect 11): malformed upgrade requests to the
// WebSocket listener, written byte for byte, get their HTTP status (400
// for a bad Sec-WebSocket-Key or Content-Length with Transfer-Encoding,
// 431 for a 256 KiB header) instead of a 101 or a reset, and the
// connection closes; a well-formed one still gets 101. The HTTP listener
// answers the oversize header with 431 too.
func TestHTTPBadInput(t *testing.T) {
	e := start(t, nil)
	for _, a := range gatewaytest.HTTPAbuses {
		t.Run(a.Name, func(t *testing.T) {
			status, br, nc := gatewaytest.RawHTTP(t, e.addr("ws"), a.Request)
			if status != a.Status {
				t.Fatalf("answered %d, want %d", status, a.Status)
			}
			gatewaytest.ExpectClosed(t, nc, br, 5*time.Second)
		})
	}
	t.Run("well-formed", func(t *testing.T) {
		if status, _, _ := gatewaytest.RawHTTP(t, e.addr("ws"), gatewaytest.Upgrade("/ws", gatewaytest.ValidKey, "", "")); status != http.StatusSwitchingProtocols {
			t.Fatalf("answered %d, want 101", status)
		}
	})
	t.Run("HTTP listener, 256 KiB header", func(t *testing.T) {
		big := gatewaytest.HTTPAbuses[len(gatewaytest.HTTPAbuses)-1]
		status, br, nc := gatewaytest.RawHTTP(t, e.g.Addrs().HTTP, big.Request)
		if status != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("answered %d, want 431", status)
		}
		gatewaytest.ExpectClosed(t, nc, br, 5*time.Second)
	})
}

// TestHugeWSFrameHeader (issue 9, defect 11): a WebSocket frame header
// declaring 2^40 bytes is refused at once, with close code 1009 (message
// too big), and the connection closes, long before the HELLO timeout.
func TestHugeWSFrameHeader(t *testing.T) {
	e := start(t, nil)
	if code := gatewaytest.HugeFrameHeader(t, e.addr("ws"), 2*time.Second); code != websocket.CloseMessageTooBig {
		t.Fatalf("close code %d, want %d", code, websocket.CloseMessageTooBig)
	}
}

// TestWSEarlyHello: a HELLO sent in the same write as the upgrade request
// (before the 101) is answered with WELCOME: the bytes the WS listener had
// read past the request survive the upgrade (httpserver.NewUpgrading).
func TestWSEarlyHello(t *testing.T) {
	e := start(t, nil)
	if f := gatewaytest.EarlyHello(t, e.addr("ws")); f.Type != protocol.TypeWelcome {
		t.Fatalf("answered %s, want WELCOME", gatewaytest.Describe(f))
	}
}

// TestHTTPListenerLimits (issue 9, defect 11): on the HTTP listener an
// unfinished request gets 408 and is closed after HTTPReadTimeout, and a
// connection beyond HTTPMaxConns gets 503 at once. The WebSocket
// listener closes an unfinished upgrade request after the same timeout.
func TestHTTPListenerLimits(t *testing.T) {
	const timeout = 300 * time.Millisecond
	e := start(t, func(c *gatewayConfig) { c.HTTPReadTimeout = timeout; c.HTTPMaxConns = 3 })
	unfinished := []byte("GET /status HTTP/1.1\r\nHost: gw\r\n") // no blank line
	for _, addr := range []string{e.g.Addrs().HTTP, e.addr("ws")} {
		begin := time.Now()
		status, br, nc := gatewaytest.RawHTTP(t, addr, unfinished)
		if status != http.StatusRequestTimeout {
			t.Fatalf("%s: unfinished request answered %d, want 408", addr, status)
		}
		gatewaytest.ExpectClosed(t, nc, br, 2*time.Second)
		if d := time.Since(begin); d < timeout/2 || d > timeout+2*time.Second {
			t.Fatalf("%s: closed after %v, read timeout %v", addr, d, timeout)
		}
	}

	e = start(t, func(c *gatewayConfig) { c.HTTPMaxConns = 3 })
	for range 3 {
		c, err := net.Dial("tcp", e.g.Addrs().HTTP)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = c.Write(unfinished)
	}
	status, _, _ := gatewaytest.RawHTTP(t, e.g.Addrs().HTTP, []byte("GET /status HTTP/1.1\r\nHost: gw\r\n\r\n"))
	if status != http.StatusServiceUnavailable {
		t.Fatalf("a fourth connection with 3 allowed got %d, want 503", status)
	}
}
