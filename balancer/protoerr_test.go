package balancer

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/protocol"
)

// TestProtocolErrorsSameOnGatewayAndProxy sends each kind of malformed
// input to a gateway and to a proxy, over TCP and WebSocket, and checks
// that both answer by the rules of SPEC.md section 6: an ERROR with the
// code, under the frame's call id when its header was whole (else 0);
// the connection goes on when the stream is intact (after HELLO), and ends
// (WebSocket close code 1002) before HELLO or for an unsupported version.
func TestProtocolErrorsSameOnGatewayAndProxy(t *testing.T) {
	gs := startGateways(t, 1, nil)
	p := startProxy(t, gs, nil)
	servers := map[string]map[string]string{
		"gateway": {"tcp": gs[0].Addrs().TCP, "ws": gs[0].Addrs().WS},
		"proxy":   {"tcp": p.Addrs().TCP, "ws": p.Addrs().WS},
	}
	call := func(a *gatewaytest.Peer) []byte { return gatewaytest.Encode(t, a.Frame(getOrderCall)) }
	cases := []struct {
		name   string
		hello  bool
		code   protocol.Code
		echo   bool // the ERROR carries the frame's call id
		closes bool
		send   func(t *testing.T, a *gatewaytest.Peer)
	}{
		{"body length mismatch", true, protocol.CodeBadFrame, true, false, func(t *testing.T, a *gatewaytest.Peer) {
			b := call(a)
			binary.BigEndian.PutUint32(b[40:44], uint32(len(b))) // declares more body than there is
			sendRaw(t, a, b)
		}},
		{"unsupported version", true, protocol.CodeUnsupportedVersion, true, true, func(t *testing.T, a *gatewaytest.Peer) {
			b := call(a)
			b[0] = 9
			sendRaw(t, a, b)
		}},
		{"CALL before HELLO", false, protocol.CodeBadFrame, false, true, func(t *testing.T, a *gatewaytest.Peer) {
			sendRaw(t, a, call(a))
		}},
		{"text message", true, protocol.CodeBadFrame, false, false, func(t *testing.T, a *gatewaytest.Peer) {
			if a.WS == nil {
				sendRaw(t, a, []byte{0, 0}) // TCP: a frame shorter than a header
				return
			}
			t.Fatal("the WebSocket text case runs on its own connection (wsTextMessage)")
		}},
	}
	for server, addrs := range servers {
		for _, binding := range gatewaytest.Bindings {
			for _, c := range cases {
				t.Run(server+"/"+binding+"/"+c.name, func(t *testing.T) {
					if binding == "ws" && c.name == "text message" {
						wsTextMessage(t, addrs[binding])
						return
					}
					a := gatewaytest.Dial(t, binding, addrs[binding], gatewaytest.Options{})
					if c.hello {
						a.Hello(0, protocol.SessionID{})
					}
					id := a.Frame(getOrderCall).CallID + 1 // the id the next encoded call gets
					var reply <-chan *protocol.Frame
					if c.echo {
						reply = a.Expect(id)
					}
					c.send(t, a)
					var f *protocol.Frame
					if c.echo {
						f = a.Wait(reply)
					} else {
						f = a.NextWithin(5 * time.Second)
					}
					want := uint32(0)
					if c.echo {
						want = id
					}
					if f == nil || f.Type != protocol.TypeError || f.CallID != want {
						t.Fatalf("got %s, want ERROR %s with call id %d", gatewaytest.Describe(f), c.code, want)
					}
					if e := gatewaytest.ErrorOf(f); e.Code != c.code {
						t.Fatalf("got %v, want %s", e, c.code)
					}
					if !c.closes {
						if f := a.Call(getOrderCall); f == nil || f.Type != protocol.TypeResult {
							t.Fatalf("the connection after the bad frame: %s", gatewaytest.Describe(f))
						}
						return
					}
					err := a.WaitClosed()
					if binding == "ws" {
						var ce *websocket.CloseError
						if !errors.As(err, &ce) || ce.Code != websocket.CloseProtocolError {
							t.Fatalf("closed with %v, want WebSocket close 1002", err)
						}
					}
				})
			}
		}
	}
}

// wsTextMessage sends a WebSocket text message after HELLO, on a
// connection of its own (no writer goroutine shares it): ERROR BAD_FRAME
// with call id 0, and the connection goes on.
func wsTextMessage(t *testing.T, addr string) {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+protocol.WSPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	next := func() *protocol.Frame {
		t.Helper()
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		var f protocol.Frame
		if err := protocol.Decode(b, &f); err != nil {
			t.Fatal(err)
		}
		return &f
	}
	send := func(f *protocol.Frame) {
		t.Helper()
		b, err := protocol.AppendFrame(nil, f)
		if err != nil {
			t.Fatal(err)
		}
		if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
			t.Fatal(err)
		}
	}
	send(&protocol.Frame{Type: protocol.TypeHello})
	if f := next(); f.Type != protocol.TypeWelcome {
		t.Fatalf("after HELLO: %s", gatewaytest.Describe(f))
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if f := next(); f.Type != protocol.TypeError || f.CallID != 0 || protocol.ErrorFromBody(f.Body).Code != protocol.CodeBadFrame {
		t.Fatalf("after a text message: %s, want ERROR BAD_FRAME with call id 0", gatewaytest.Describe(f))
	}
	body, _ := protocol.MarshalArgs("o-1")
	send(&protocol.Frame{Type: protocol.TypeCall, CallID: 5, Flags: protocol.FlagStateless,
		Module: []byte("orders@1"), TypeName: []byte("Orders"), Method: []byte("GetOrder"), Body: body})
	if f := next(); f.Type != protocol.TypeResult || f.CallID != 5 {
		t.Fatalf("a call after the text message: %s", gatewaytest.Describe(f))
	}
}
