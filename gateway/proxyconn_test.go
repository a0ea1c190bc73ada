package gateway_test

import (
	"testing"
	"time"

	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/internal/testgw"
	"github.com/graftlb/graftlb/protocol"
)

// TestProxyConnectionIsNotCutWhenBehind: a proxy connection (HELLO with
// PROXY) that falls behind while a module floods it with events makes the
// module wait; the connection is not cut, and every event and the result
// arrive once the proxy reads again. A direct client in the same position
// is cut (TestBadInput), so that it cannot stall a module.
func TestProxyConnectionIsNotCutWhenBehind(t *testing.T) {
	g := testgw.Start(t, "gw1", func(c *gateway.Config) {
		c.Limits = protocol.Limits{MaxFrame: 64 << 10, MaxPendingWrite: 128 << 10}
	})
	p := gatewaytest.Dial(t, "tcp", g.Addrs().TCP, gatewaytest.Options{NoReader: true})
	body, _ := protocol.Marshal(protocol.Hello{})
	_ = p.Send(&protocol.Frame{Type: protocol.TypeHello, Flags: protocol.FlagProxy, Session: protocol.NewSessionID(), Body: body})
	const n = 200000 // ~16 MB of events: past the socket buffers and the 128 KiB queue
	_ = p.Send(p.Frame(gatewaytest.Call{Target: "ticker@1.Ticker.Subscribe", Args: []any{"flood", n},
		Flags: protocol.FlagStateless | protocol.FlagNewSession, Session: protocol.NewSessionID(), CallID: 1}))
	// The proxy stalls: it reads nothing for a while after the call
	// started. The stall is this test's input, not a wait for a condition.
	deadline := time.Now().Add(10 * time.Second)
	for g.Stats().CallsInFlight == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	var f protocol.Frame
	events, result := 0, false
	_ = p.Conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for !result {
		raw, err := p.Conn.ReadFrame()
		if err != nil {
			t.Fatalf("after %d events: %v (the gateway cut the proxy connection)", events, err)
		}
		if protocol.Decode(raw, &f) != nil {
			t.Fatal("bad frame")
		}
		switch f.Type {
		case protocol.TypeEvent:
			events++
		case protocol.TypeResult:
			result = true
		case protocol.TypeError:
			t.Fatalf("after %d events: %v", events, protocol.ErrorFromBody(f.Body))
		}
	}
	if events != n {
		t.Fatalf("%d events arrived, want %d", events, n)
	}
}
