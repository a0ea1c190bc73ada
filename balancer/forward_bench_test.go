package balancer

import (
	"errors"
	"net"
	"sync"
	"testing"

	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/protocol"
	"github.com/rs/zerolog"
)

// echoGateway is the cheapest possible gateway: it answers HELLO and turns
// every CALL into a RESULT carrying the same body, allocating nothing per
// frame, so that benchmarks measure the proxy alone.
type echoGateway struct {
	ln net.Listener
	wg sync.WaitGroup
}

func startEcho(tb testing.TB) *echoGateway {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	e := &echoGateway{ln: ln}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, nc)
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				serveEcho(protocol.NewStreamConn(nc, protocol.ConnOptions{}))
			}()
		}
	}()
	tb.Cleanup(func() {
		_ = ln.Close()
		e.wg.Wait()
	})
	return e
}

func serveEcho(pc *protocol.Conn) {
	defer pc.Abort()
	var f protocol.Frame
	for {
		raw, err := pc.ReadFrame()
		if err != nil || protocol.Decode(raw, &f) != nil {
			return
		}
		switch f.Type {
		case protocol.TypeHello:
			body, _ := protocol.Marshal(protocol.Welcome{Server: "echo"})
			_ = pc.Send(&protocol.Frame{Type: protocol.TypeWelcome, Session: f.Session, Body: body})
		case protocol.TypeCall:
			raw[1] = byte(protocol.TypeResult) // same header and body, now a RESULT
			if pc.WriteFrame(raw) != nil {
				return
			}
		case protocol.TypePing:
			f.Type = protocol.TypePong
			_ = pc.Send(&f)
		}
	}
}

// rawClient speaks frames to the proxy directly, without the Go client's
// per-call allocations.
type rawClient struct {
	pc    *protocol.Conn
	frame []byte
}

func dialRaw(tb testing.TB, addr string, stateless bool) *rawClient {
	tb.Helper()
	return dialRawAs(tb, addr, stateless, nil, protocol.SessionID{})
}

// dialRawAs is dialRaw with a HELLO credential, and calls naming session
// sess (zero: the connection's).
func dialRawAs(tb testing.TB, addr string, stateless bool, cred []byte, sess protocol.SessionID) *rawClient {
	tb.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	pc := protocol.NewStreamConn(nc, protocol.ConnOptions{})
	tb.Cleanup(pc.Abort)
	var hello []byte
	if cred != nil {
		hello, _ = protocol.Marshal(protocol.Hello{Credential: cred})
	}
	if err := pc.Send(&protocol.Frame{Type: protocol.TypeHello, Body: hello}); err != nil {
		tb.Fatal(err)
	}
	var f protocol.Frame
	raw, err := pc.ReadFrame()
	if err != nil || protocol.Decode(raw, &f) != nil || f.Type != protocol.TypeWelcome {
		tb.Fatalf("no WELCOME: %v", err)
	}
	body, _ := protocol.MarshalArgs("o-1")
	call := protocol.Frame{Type: protocol.TypeCall, Module: []byte("orders@1"), TypeName: []byte("Orders"),
		Method: []byte("GetOrder"), Session: sess, Body: body}
	if stateless {
		call.Flags = protocol.FlagStateless
	}
	frame, _ := protocol.AppendFrame(nil, &call)
	return &rawClient{pc: pc, frame: frame}
}

// send sends one call with id.
func (c *rawClient) send(id uint32) error {
	protocol.SetCallID(c.frame, id)
	return c.pc.WriteFrame(c.frame)
}

// recv reads one reply, checks it is a RESULT and returns its call id,
// which is free again.
func (c *rawClient) recv() (uint32, error) {
	raw, err := c.pc.ReadFrame()
	if err != nil {
		return 0, err
	}
	t, _, id, ok := protocol.PeekHeader(raw)
	if !ok || t != protocol.TypeResult {
		return 0, errors.New("reply is not a RESULT")
	}
	return id, nil
}

func echoProxy(tb testing.TB, gateways int) *Proxy {
	tb.Helper()
	ms := make([]discovery.Member, gateways)
	for i := range ms {
		e := startEcho(tb)
		ms[i] = discovery.Member{Name: gwName(i), Role: discovery.RoleGateway, Addrs: discovery.Addrs{TCP: e.ln.Addr().String()}}
	}
	log := zerolog.New(zerolog.NewTestWriter(tb)).Level(zerolog.WarnLevel)
	p, err := New(Config{TCP: "127.0.0.1:0", Logger: &log}, discovery.NewStatic(ms))
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = p.Close() })
	return p
}

// benchmarkForward keeps window calls in flight on one client connection
// and reports the time and allocations per forwarded call (two frames:
// the CALL and its RESULT).
func benchmarkForward(b *testing.B, addr string, stateless bool, window int) {
	c := dialRaw(b, addr, stateless)
	for id := 1; id <= window; id++ {
		if err := c.send(uint32(id)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id, err := c.recv()
		if err != nil {
			b.Fatal(err)
		}
		if err := c.send(id); err != nil { // its id is free again
			b.Fatal(err)
		}
	}
	b.StopTimer()
	for i := 0; i < window; i++ {
		_, _ = c.recv()
	}
}

func BenchmarkForwardStateless(b *testing.B) {
	p := echoProxy(b, 3)
	benchmarkForward(b, p.Addrs().TCP, true, 64)
}

func BenchmarkForwardStateful(b *testing.B) {
	p := echoProxy(b, 3)
	benchmarkForward(b, p.Addrs().TCP, false, 64)
}

// BenchmarkDirect is the baseline: the same raw client straight to the
// echo gateway, no proxy.
func BenchmarkDirect(b *testing.B) {
	e := startEcho(b)
	benchmarkForward(b, e.ln.Addr().String(), true, 64)
}
