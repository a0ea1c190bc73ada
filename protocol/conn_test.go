package protocol

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"
)

// nopConn is a net.Conn that writes into a buffer.
type nopConn struct{ w io.Writer }

func (c nopConn) Read([]byte) (int, error)       { return 0, io.EOF }
func (c nopConn) Write(b []byte) (int, error)    { return c.w.Write(b) }
func (nopConn) Close() error                     { return nil }
func (nopConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (nopConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (nopConn) SetDeadline(time.Time) error      { return nil }
func (nopConn) SetReadDeadline(time.Time) error  { return nil }
func (nopConn) SetWriteDeadline(time.Time) error { return nil }

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-ch
	if b == nil {
		t.Fatal("accept failed")
	}
	return a, b
}

// wsPair returns a client and a server WebSocket connection over loopback,
// served by fasthttp as the gateway does.
func wsPair(t testing.TB, o ConnOptions) (client, server *Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srvConn := make(chan *Conn, 1)
	release := make(chan struct{})
	up := websocket.FastHTTPUpgrader{}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		_ = up.Upgrade(ctx, func(ws *websocket.Conn) {
			srvConn <- NewWSConn(ws, o)
			<-release
		})
	}}
	go func() { _ = srv.Serve(ln) }()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+ln.Addr().String()+WSPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	client = NewWSConn(ws, o)
	server = <-srvConn
	t.Cleanup(func() {
		client.Abort()
		server.Abort()
		close(release)
		_ = srv.Shutdown()
	})
	return client, server
}

func TestStreamConnManySenders(t *testing.T) {
	a, b := tcpPair(t)
	ca, cb := NewStreamConn(a, ConnOptions{}), NewStreamConn(b, ConnOptions{})
	defer ca.Close()
	defer cb.Close()
	const senders, each = 8, 500
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				f := &Frame{Type: TypeCall, CallID: uint32(s<<16 | i), Module: []byte("m@1"), Body: bytes.Repeat([]byte{byte(s)}, i%300)}
				if err := ca.Send(f); err != nil {
					t.Error(err)
					return
				}
			}
		}(s)
	}
	next := make([]int, senders)
	var f Frame
	for n := 0; n < senders*each; n++ {
		b, err := cb.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if err := Decode(b, &f); err != nil {
			t.Fatal(err)
		}
		s, i := int(f.CallID>>16), int(f.CallID&0xffff)
		if i != next[s] || len(f.Body) != i%300 || (len(f.Body) > 0 && f.Body[0] != byte(s)) {
			t.Fatalf("sender %d: got frame %d (body %d), want %d", s, i, len(f.Body), next[s])
		}
		next[s]++
	}
	wg.Wait()
}

func TestStreamReaderLimits(t *testing.T) {
	big := &Frame{Type: TypeResult, Body: make([]byte, 200<<10)}
	for i := range big.Body {
		big.Body[i] = byte(i)
	}
	var buf bytes.Buffer
	w := NewStreamConn(nopConn{&buf}, ConnOptions{})
	_ = w.Send(big)
	_ = w.Send(&Frame{Type: TypePing})
	_ = w.Close()
	stream := buf.Bytes()

	t.Run("frame larger than the buffer", func(t *testing.T) {
		r := NewStreamReader(bytes.NewReader(stream), 1<<20)
		b, err := r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		var f Frame
		if err := Decode(b, &f); err != nil || !bytes.Equal(f.Body, big.Body) {
			t.Fatalf("big frame mangled: %v", err)
		}
		b, err = r.ReadFrame()
		if err != nil || Decode(b, &f) != nil || f.Type != TypePing {
			t.Fatalf("frame after the big one: %v", err)
		}
		if _, err := r.ReadFrame(); err != io.EOF {
			t.Fatalf("at end: %v, want EOF", err)
		}
	})
	t.Run("over the limit", func(t *testing.T) {
		r := NewStreamReader(bytes.NewReader(stream), 100<<10)
		_, err := r.ReadFrame()
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v, want TOO_LARGE", err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		r := NewStreamReader(bytes.NewReader(stream[:1000]), 1<<20)
		if _, err := r.ReadFrame(); err != io.ErrUnexpectedEOF {
			t.Fatalf("err = %v, want unexpected EOF", err)
		}
		r = NewStreamReader(bytes.NewReader(stream[:2]), 1<<20)
		if _, err := r.ReadFrame(); err != io.ErrUnexpectedEOF {
			t.Fatalf("err = %v, want unexpected EOF", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		r := NewStreamReader(bytes.NewReader([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")), 1<<20)
		if _, err := r.ReadFrame(); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v, want TOO_LARGE for an HTTP request", err)
		}
	})
}

func TestSlowPeerNonBlocking(t *testing.T) {
	a, b := tcpPair(t)
	defer b.Close()
	c := NewStreamConn(a, ConnOptions{Limits: Limits{MaxFrame: 64 << 10, MaxPendingWrite: 128 << 10}})
	defer c.Abort()
	f := &Frame{Type: TypeEvent, Body: make([]byte, 32<<10)}
	var err error
	for i := 0; i < 10000 && err == nil; i++ { // the peer never reads
		err = c.Send(f)
	}
	if err != ErrSlowPeer {
		t.Fatalf("err = %v, want ErrSlowPeer", err)
	}
	if err := c.Send(f); err != ErrSlowPeer {
		t.Fatalf("after overflow: %v", err)
	}
}

func TestBlockingWriterWaitsForReader(t *testing.T) {
	a, b := tcpPair(t)
	ca := NewStreamConn(a, ConnOptions{Limits: Limits{MaxFrame: 64 << 10, MaxPendingWrite: 128 << 10}, BlockWhenFull: true})
	cb := NewStreamConn(b, ConnOptions{})
	defer cb.Close()
	const n = 400 // 400 × 32 KiB = 12.5 MiB: far more than socket buffers and the queue
	done := make(chan error, 1)
	go func() {
		f := &Frame{Type: TypeEvent, Body: make([]byte, 32<<10)}
		for i := 0; i < n; i++ {
			f.CallID = uint32(i)
			if err := ca.Send(f); err != nil {
				done <- err
				return
			}
		}
		done <- ca.Close()
	}()
	var f Frame
	for i := 0; i < n; i++ {
		buf, err := cb.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if err := Decode(buf, &f); err != nil || f.CallID != uint32(i) {
			t.Fatalf("frame %d: %v %d", i, err, f.CallID)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestWebSocketBinding(t *testing.T) {
	client, server := wsPair(t, ConnOptions{Limits: Limits{MaxFrame: 8 << 10}})
	var f Frame
	for i := 0; i < 100; i++ {
		if err := client.Send(&Frame{Type: TypeCall, CallID: uint32(i), Body: make([]byte, i*50)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 100; i++ {
		b, err := server.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if err := Decode(b, &f); err != nil || f.CallID != uint32(i) || len(f.Body) != i*50 {
			t.Fatalf("frame %d: %v %+v", i, err, f)
		}
	}
	// Over the limit.
	if err := client.Send(&Frame{Type: TypeCall, Body: make([]byte, 9<<10)}); err != nil {
		t.Fatal(err)
	}
	if _, err := server.ReadFrame(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want TOO_LARGE", err)
	}
}

func TestWebSocketTextMessage(t *testing.T) {
	client, server := wsPair(t, ConnOptions{})
	if err := client.ws.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := server.ReadFrame(); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("err = %v, want BAD_FRAME", err)
	}
}

// loopReader replays one stream forever.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}
