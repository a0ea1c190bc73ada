package gateway_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/protocol"
)

// abuse is one kind of bad input. run drives the abusive peer (dialled,
// not welcomed) and checks the gateway's answer.
type abuse struct {
	name string
	// noReader dials the abuser without a reader (a peer that stops reading).
	noReader bool
	run      func(t *testing.T, e *env, p *gatewaytest.Peer)
}

// Limits of the gateway under abuse.
const (
	abuseMaxFrame     = 64 << 10
	abuseHelloTimeout = 300 * time.Millisecond
)

func hello(t *testing.T, p *gatewaytest.Peer) { p.Hello(0, protocol.SessionID{}) }

// expectClose checks that the gateway answered code (0: nothing) with call
// id 0 and closed the connection.
func expectClose(t *testing.T, p *gatewaytest.Peer, code protocol.Code) {
	t.Helper()
	if code != 0 {
		f := p.Next()
		gatewaytest.ExpectError(t, f, code)
		if f.CallID != 0 {
			t.Fatalf("connection error on call id %d, want 0", f.CallID)
		}
	}
	if err := p.WaitClosed(); err == nil {
		t.Fatal("connection not closed")
	}
	if f := p.NextWithin(0); f != nil {
		t.Fatalf("more frames before the close: %s", gatewaytest.Describe(f))
	}
}

var abuses = []abuse{
	{name: "garbage bytes", run: func(t *testing.T, e *env, p *gatewaytest.Peer) {
		garbage := []byte("GET /definitely/not/frames HTTP/1.1\r\n\r\n")
		if p.Binding == "tcp" {
			// The first four bytes read as a length far over the limit.
			_, _ = p.Raw.Write(garbage)
			expectClose(t, p, protocol.CodeTooLarge)
			return
		}
		_ = p.Conn.WriteFrame(garbage) // one binary message
		expectClose(t, p, protocol.CodeBadFrame)
	}},
	{name: "truncated frame then EOF", run: func(t *testing.T, e *env, p *gatewaytest.Peer) {
		f := gatewaytest.Encode(t, &protocol.Frame{Type: protocol.TypeHello, Body: make([]byte, 8000)})
		if p.Binding == "tcp" {
			_, _ = p.Raw.Write(binary.BigEndian.AppendUint32(nil, uint32(len(f))))
			_, _ = p.Raw.Write(f[:len(f)/2])
			_ = p.Raw.(*net.TCPConn).CloseWrite()
			expectClose(t, p, 0)
			return
		}
		// Half a WebSocket message (a fragment without FIN), then the
		// socket closes.
		w, err := p.WS.NextWriter(websocket.BinaryMessage)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(f) // larger than the write buffer: a first fragment goes out
		_ = p.Raw.Close()
		p.WaitClosed()
	}},
	{name: "frame over the size limit", run: func(t *testing.T, e *env, p *gatewaytest.Peer) {
		_ = p.Send(&protocol.Frame{Type: protocol.TypeHello, Body: make([]byte, abuseMaxFrame)})
		if p.Binding == "ws" {
			// Refused from the message header, before the payload, with
			// close 1009; no ERROR can follow a close.
			err := p.WaitClosed()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
				t.Fatalf("connection ended with %v, want close 1009", err)
			}
			return
		}
		expectClose(t, p, protocol.CodeTooLarge)
	}},
	{name: "unknown frame type", run: func(t *testing.T, e *env, p *gatewaytest.Peer) {
		hello(t, p)
		b := gatewaytest.Encode(t, p.Frame(gatewaytest.Call{Target: "orders@1.Orders.GetOrder", Args: []any{"o"}, CallID: 77}))
		b[1] = 99
		_ = p.Conn.WriteFrame(b)
		f := p.Next()
		gatewaytest.ExpectError(t, f, protocol.CodeBadFrame)
		if f.CallID != 77 {
			t.Fatalf("BAD_FRAME on call id %d, want 77", f.CallID)
		}
		// The connection stays open.
		gatewaytest.Result(t, p.Call(getOrder), nil)
	}},
	{name: "malformed frame after HELLO", run: func(t *testing.T, e *env, p *gatewaytest.Peer) {
		if p.Binding == "ws" {
			// Frames are binary messages; a text message is BAD_FRAME. Raw
			// writes must come before any write of p.Conn's writer.
			_ = p.WS.WriteMessage(websocket.BinaryMessage, gatewaytest.Encode(t, &protocol.Frame{Type: protocol.TypeHello}))
			if f := p.Next(); f == nil || f.Type != protocol.TypeWelcome {
				t.Fatalf("got %s, want WELCOME", gatewaytest.Describe(f))
			}
			_ = p.WS.WriteMessage(websocket.TextMessage, []byte("hello?"))
		} else {
			hello(t, p)
			// The header's body length disagrees with the frame's size.
			b := gatewaytest.Encode(t, p.Frame(gatewaytest.Call{Target: "orders@1.Orders.GetOrder", Args: []any{"o"}}))
			b[39]++
			_ = p.Conn.WriteFrame(b)
		}
		gatewaytest.ExpectError(t, p.Next(), protocol.CodeBadFrame)
		// The stream is still in sync: the connection stays open.
		gatewaytest.Result(t, p.Call(getOrder), nil)
	}},
	{name: "unknown version", run: func(t *testing.T, e *env, p *gatewaytest.Peer) {
		b := gatewaytest.Encode(t, &protocol.Frame{Type: protocol.TypeHello})
		b[0] = 2
		_ = p.Conn.WriteFrame(b)
		expectClose(t, p, protocol.CodeUnsupportedVersion)
	}},
	{name: "CALL before HELLO", run: func(t *testing.T, e *env, p *gatewaytest.Peer) {
		_ = p.Send(p.Frame(getOrder))
		expectClose(t, p, protocol.CodeBadFrame)
	}},
	{name: "unknown module", run: func(t *testing.T, e *env, p *gatewaytest.Peer) {
		hello(t, p)
		e1 := gatewaytest.ExpectError(t, p.Call(gatewaytest.Call{Target: "nope@1.Orders.GetOrder", Flags: stateless}), protocol.CodeNotFound)
		if !strings.Contains(e1.Message, "nope@1") {
			t.Fatalf("message %q does not name the module", e1.Message)
		}
	}},
	{name: "unknown method", run: func(t *testing.T, e *env, p *gatewaytest.Peer) {
		hello(t, p)
		gatewaytest.ExpectError(t, p.Call(gatewaytest.Call{Target: "orders@1.Orders.Nope", Flags: stateless}), protocol.CodeNotFound)
	}},
	{name: "wrong argument types", run: func(t *testing.T, e *env, p *gatewaytest.Peer) {
		hello(t, p)
		e1 := gatewaytest.ExpectError(t, p.Call(gatewaytest.Call{Target: "test@1.T.Add", Flags: stateless, Args: []any{1, "two"}}),
			protocol.CodeBadArgs)
		if !strings.Contains(e1.Message, "argument 2 (int64)") {
			t.Fatalf("message %q does not say which argument", e1.Message)
		}
	}},
	{name: "call id reused while in flight", run: func(t *testing.T, e *env, p *gatewaytest.Peer) {
		hello(t, p)
		sleep := gatewaytest.Call{Target: "chaos@1.Chaos.Sleep", Flags: stateless, Args: []any{60000}, CallID: 9}
		p.Start(sleep)
		_ = p.Send(p.Frame(sleep))
		expectClose(t, p, protocol.CodeBadFrame)
	}},
	{name: "connects and sends nothing", run: func(t *testing.T, e *env, p *gatewaytest.Peer) {
		begin := time.Now()
		expectClose(t, p, 0)
		if d := time.Since(begin); d > abuseHelloTimeout+2*time.Second {
			t.Fatalf("closed after %v, HELLO timeout is %v", d, abuseHelloTimeout)
		}
	}},
	{name: "stops reading while events are pushed", noReader: true, run: func(t *testing.T, e *env, p *gatewaytest.Peer) {
		body, _ := protocol.Marshal(protocol.Hello{})
		_ = p.Send(&protocol.Frame{Type: protocol.TypeHello, Body: body})
		// Events of ~32 KiB each: the write queue (128 KiB) and the
		// socket buffers overflow long before the ticker is done.
		topic := strings.Repeat("t", 32<<10)
		_ = p.Send(p.Frame(gatewaytest.Call{Target: "ticker@1.Ticker.Subscribe", Flags: stateless, Args: []any{topic, 100000}}))
		eventually(t, "slow reader disconnected", func() bool { return len(e.logs.notable(t, p.LocalAddr())) > 0 })
		if _, err := p.ReadAll(gatewaytest.Timeout); err == nil || isTimeout(err) {
			t.Fatalf("reading the backlog ended with %v, want the close", err)
		}
	}},
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestBadInput checks that each abuse is answered with its protocol error
// or a timely close, is logged exactly once, and that a healthy client of
// the same gateway, calling all along, notices nothing.
func TestBadInput(t *testing.T) {
	for _, a := range abuses {
		t.Run(a.name, func(t *testing.T) {
			forBindings(t, func(t *testing.T, binding string) {
				e := start(t, func(c *gatewayConfig) {
					c.Limits.MaxFrame = abuseMaxFrame
					c.Limits.MaxPendingWrite = 2 * abuseMaxFrame
					c.Limits.WriteTimeout = time.Second
					c.Limits.HelloTimeout = abuseHelloTimeout
				})
				healthy := e.dial(t, binding)
				stop := make(chan struct{})
				var wg sync.WaitGroup
				var served atomic.Int64
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						begin := time.Now()
						f := healthy.Call(getOrder)
						if f == nil || f.Type != protocol.TypeResult {
							t.Errorf("healthy client got %s", gatewaytest.Describe(f))
							return
						}
						if d := time.Since(begin); d > 2*time.Second {
							t.Errorf("healthy call took %v", d)
						}
						served.Add(1)
					}
				})
				abuser := gatewaytest.Dial(t, binding, e.addr(binding), gatewaytest.Options{NoReader: a.noReader})
				before := served.Load()
				a.run(t, e, abuser)
				eventually(t, "healthy calls during the abuse", func() bool { return served.Load() > before+10 })
				close(stop)
				wg.Wait()
				abuser.Close()
				healthy.Close()
				_ = e.g.Close()
				<-e.g.Done()

				lines := e.logs.notable(t, abuser.LocalAddr())
				if len(lines) == 1 {
					t.Logf("logged: %s %s", lines[0]["level"], lines[0]["message"])
				}
				if len(lines) != 1 {
					var b bytes.Buffer
					for _, l := range lines {
						b.WriteString("\n\t" + l["level"].(string) + " " + l["message"].(string))
					}
					t.Errorf("abuse logged %d times, want once:%s", len(lines), b.String())
				}
				if lines := e.logs.notable(t, healthy.LocalAddr()); len(lines) != 0 {
					t.Errorf("healthy client logged: %v", lines)
				}
			})
		})
	}
}
