package balancer

import (
	"bytes"
	"encoding/json"
	"errors"
	"github.com/graftlb/graftlb/internal/proctest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/graftlb/graftlb/clock"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/protocol"
	"github.com/rs/zerolog"
)

// logSink collects the proxy's JSON log lines.
type logSink struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// about returns the warn-or-worse and info lines that name addr.
func (s *logSink) about(addr string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, line := range strings.Split(s.b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["client"] == addr && m["level"] != "debug" {
			out = append(out, m["message"].(string))
		}
	}
	return out
}

var getOrderCall = gatewaytest.Call{Target: "orders@1.Orders.GetOrder", Args: []any{"o-1"}, Flags: protocol.FlagStateless}

// abuse is one kind of bad input, and what the proxy must answer.
type abuse struct {
	name     string
	noReader bool
	run      func(t *testing.T, p *Proxy, a *gatewaytest.Peer)
}

// sendRaw writes one frame's bytes in the peer's binding, bypassing the
// encoder's checks.
func sendRaw(t *testing.T, a *gatewaytest.Peer, b []byte) {
	t.Helper()
	// WriteFrame sends the bytes as they are: one binary message, or one
	// length-prefixed frame.
	if err := a.Conn.WriteFrame(b); err != nil {
		t.Fatal(err)
	}
}

// expectClosedWith reads until the connection closes and checks that the
// last frame before it was ERROR code.
func expectClosedWith(t *testing.T, a *gatewaytest.Peer, code protocol.Code) {
	t.Helper()
	f := a.Next()
	gatewaytest.ExpectError(t, f, code)
	a.WaitClosed()
}

// expectCloseCode waits until the WebSocket connection closes and checks
// the close code the server sent.
func expectCloseCode(t *testing.T, a *gatewaytest.Peer, code int) {
	t.Helper()
	err := a.WaitClosed()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != code {
		t.Fatalf("connection ended with %v, want close %d", err, code)
	}
}

var abuses = []abuse{
	{name: "garbage", run: func(t *testing.T, p *Proxy, a *gatewaytest.Peer) {
		if a.WS != nil {
			sendRaw(t, a, []byte("garbage!"))
			expectClosedWith(t, a, protocol.CodeBadFrame)
			return
		}
		_, _ = a.Raw.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		expectClosedWith(t, a, protocol.CodeTooLarge)
	}},
	{name: "too large", run: func(t *testing.T, p *Proxy, a *gatewaytest.Peer) {
		a.Hello(0, protocol.SessionID{})
		c := getOrderCall
		c.Body = bytes.Repeat([]byte{0}, 70<<10)
		_ = a.Send(a.Frame(c))
		if a.WS != nil {
			// Refused from the message header, before the payload, with
			// close 1009; no ERROR can follow a close.
			expectCloseCode(t, a, websocket.CloseMessageTooBig)
			return
		}
		expectClosedWith(t, a, protocol.CodeTooLarge)
	}},
	{name: "unknown type stays open", run: func(t *testing.T, p *Proxy, a *gatewaytest.Peer) {
		a.Hello(0, protocol.SessionID{})
		b := gatewaytest.Encode(t, &protocol.Frame{Type: protocol.TypePing, CallID: 77})
		b[1] = 99
		sendRaw(t, a, b)
		f := a.Next()
		if e := gatewaytest.ExpectError(t, f, protocol.CodeBadFrame); f.CallID != 77 {
			t.Fatalf("unknown type answered on call %d: %v", f.CallID, e)
		}
		gatewaytest.Result(t, a.Call(getOrderCall), nil)
	}},
	{name: "unknown version", run: func(t *testing.T, p *Proxy, a *gatewaytest.Peer) {
		a.Hello(0, protocol.SessionID{})
		b := gatewaytest.Encode(t, a.Frame(getOrderCall))
		b[0] = 7
		sendRaw(t, a, b)
		expectClosedWith(t, a, protocol.CodeUnsupportedVersion)
	}},
	{name: "call before hello", run: func(t *testing.T, p *Proxy, a *gatewaytest.Peer) {
		_ = a.Send(a.Frame(getOrderCall))
		expectClosedWith(t, a, protocol.CodeBadFrame)
	}},
	{name: "call id reused in flight", run: func(t *testing.T, p *Proxy, a *gatewaytest.Peer) {
		a.Hello(0, protocol.SessionID{})
		slow := gatewaytest.Call{Target: "chaos@1.Chaos.Sleep", Args: []any{2000}, Flags: protocol.FlagStateless, CallID: 5}
		_ = a.Send(a.Frame(slow))
		_ = a.Send(a.Frame(slow))
		f := a.Next()
		if e := gatewaytest.ExpectError(t, f, protocol.CodeBadFrame); f.CallID != 0 {
			t.Fatalf("reused id answered on call %d: %v", f.CallID, e)
		}
		a.WaitClosed()
	}},
	{name: "silent client", run: func(t *testing.T, p *Proxy, a *gatewaytest.Peer) {
		a.WaitClosed() // after the HELLO timeout
	}},
	{name: "client stops reading events", noReader: true, run: func(t *testing.T, p *Proxy, a *gatewaytest.Peer) {
		body, _ := protocol.Marshal(protocol.Hello{})
		_ = a.Send(&protocol.Frame{Type: protocol.TypeHello, Body: body})
		sub := gatewaytest.Call{Target: "ticker@1.Ticker.Subscribe", Args: []any{"flood", 200000}}
		_ = a.Send(a.Frame(sub))
		proctest.Eventually(t, 5*time.Second, "the abuser to be connected", func() bool { return p.admission.Conns() == 2 })
		// The proxy cuts the connection once its write queue is full.
		proctest.Eventually(t, 20*time.Second, "the proxy to cut the non-reading client", func() bool {
			return p.admission.Conns() == 1 // only the healthy client is left
		})
	}},
}

// TestProxyBadInput: each abuse gets its protocol error or a timely close,
// is logged once, and a healthy client of the same proxy keeps working.
func TestProxyBadInput(t *testing.T) {
	for _, ab := range abuses {
		t.Run(ab.name, func(t *testing.T) {
			for _, binding := range gatewaytest.Bindings {
				t.Run(binding, func(t *testing.T) {
					gs := startGateways(t, 2, nil)
					sink := &logSink{}
					log := zerolog.New(sink).Level(zerolog.InfoLevel)
					p := startProxy(t, gs, func(c *Config) {
						c.Logger = &log
						c.Limits = protocol.Limits{MaxFrame: 64 << 10, MaxPendingWrite: 256 << 10,
							HelloTimeout: 300 * time.Millisecond, WriteTimeout: time.Second}
					})
					addr := map[string]string{"tcp": p.Addrs().TCP, "ws": p.Addrs().WS}[binding]
					healthy := gatewaytest.Dial(t, binding, addr, gatewaytest.Options{})
					healthy.Hello(0, protocol.SessionID{})
					var served atomic.Int64
					stop := make(chan struct{})
					var wg sync.WaitGroup
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							select {
							case <-stop:
								return
							default:
							}
							if f := healthy.Call(getOrderCall); f == nil || f.Type != protocol.TypeResult {
								t.Errorf("healthy client got %s", gatewaytest.Describe(f))
								return
							}
							served.Add(1)
						}
					}()
					abuser := gatewaytest.Dial(t, binding, addr, gatewaytest.Options{NoReader: ab.noReader})
					before := served.Load()
					ab.run(t, p, abuser)
					proctest.Eventually(t, 10*time.Second, "healthy calls during the abuse", func() bool { return served.Load() > before+10 })
					close(stop)
					wg.Wait()
					abuser.Abort()
					proctest.Eventually(t, 5*time.Second, "the abuser's connection to end", func() bool { return p.admission.Conns() <= 1 })
					if lines := sink.about(abuser.LocalAddr()); len(lines) != 1 {
						t.Errorf("abuse logged %d times, want once: %q\n%s", len(lines), lines, sink.b.String())
					}
					if lines := sink.about(healthy.LocalAddr()); len(lines) != 0 {
						t.Errorf("healthy client logged: %q", lines)
					}
				})
			}
		})
	}
}

// TestProxyLimits: connections, calls in flight and sessions per
// connection beyond the limits get OVERLOADED; the proxy keeps serving.
func TestProxyLimits(t *testing.T) {
	gs := startGateways(t, 1, nil)
	clk := clock.NewFake()
	p := startProxy(t, gs, func(c *Config) {
		c.Clock = clk
		c.MaxConns = 2
		c.MaxSessionsPerConn = 2
		c.Limits = protocol.Limits{MaxInflight: 4}
	})
	a := gatewaytest.Dial(t, "tcp", p.Addrs().TCP, gatewaytest.Options{})
	a.Hello(0, protocol.SessionID{})
	var chans []<-chan *protocol.Frame
	for i := 0; i < 5; i++ {
		_, ch := a.Start(gatewaytest.Call{Target: "chaos@1.Chaos.Sleep", Args: []any{300}, Flags: protocol.FlagStateless})
		chans = append(chans, ch)
	}
	over := 0
	for _, ch := range chans {
		if f := a.Wait(ch); gatewaytest.ErrorOf(f) != nil && gatewaytest.ErrorOf(f).Code == protocol.CodeOverloaded {
			over++
		}
	}
	if over != 1 {
		t.Errorf("%d of 5 calls got OVERLOADED with max 4 in flight, want 1", over)
	}
	// Sessions per connection: the third new one is refused.
	for i := 0; i < 3; i++ {
		f := a.Call(gatewaytest.Call{Target: "orders@1.Orders.GetOrder", Args: []any{"o-1"}, Flags: protocol.FlagStateless,
			Session: protocol.NewSessionID()})
		if i < 2 {
			gatewaytest.Result(t, f, nil)
		} else {
			gatewaytest.ExpectError(t, f, protocol.CodeOverloaded)
		}
	}
	// Once the table forgets them (idle), the connection may bring others.
	clk.Advance(DefaultSessionIdle + 2*time.Second)
	proctest.Eventually(t, 5*time.Second, "idle sessions forgotten", func() bool { return p.sessions.len() <= 2 })
	gatewaytest.Result(t, a.Call(gatewaytest.Call{Target: "orders@1.Orders.GetOrder", Args: []any{"o-1"},
		Flags: protocol.FlagStateless, Session: protocol.NewSessionID()}), nil)
	b := gatewaytest.Dial(t, "tcp", p.Addrs().TCP, gatewaytest.Options{})
	b.Hello(0, protocol.SessionID{})
	c := gatewaytest.Dial(t, "tcp", p.Addrs().TCP, gatewaytest.Options{})
	expectClosedWith(t, c, protocol.CodeOverloaded)
	gatewaytest.Result(t, b.Call(getOrderCall), nil)
}
