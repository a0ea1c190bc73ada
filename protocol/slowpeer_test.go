package protocol

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/graftlb/graftlb/internal/tlsfiles/tlstest"
	"github.com/valyala/fasthttp"
)

// smallRcvbuf dials with a small receive buffer set before the handshake,
// so that a peer that does not read stalls its sender quickly.
func smallRcvbuf(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
	})
	if err != nil {
		return err
	}
	return serr
}

// slowPeerPair returns a Conn with limits l (server side) and the raw
// socket of a peer that has a small receive buffer and never reads unless
// the test does.
func slowPeerPair(t *testing.T, binding string, o ConnOptions) (c *Conn, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	d := net.Dialer{Control: smallRcvbuf}
	var serverTLS, clientTLS *tls.Config
	if binding == "tls" || binding == "wss" {
		ca := tlstest.NewCA(t, "slowpeer")
		srv := ca.Server(t, "server")
		serverTLS = &tls.Config{Certificates: []tls.Certificate{srv.TLS(t)}}
		clientTLS = &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
	}
	if binding == "tcp" || binding == "tls" {
		ch := make(chan net.Conn, 1)
		go func() {
			nc, _ := ln.Accept()
			if nc != nil && serverTLS != nil {
				tc := tls.Server(nc, serverTLS)
				if tc.Handshake() != nil {
					_ = nc.Close()
					nc = nil
				} else {
					nc = tc
				}
			}
			ch <- nc
		}()
		peer, err = d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if clientTLS != nil {
			tc := tls.Client(peer, clientTLS)
			if err := tc.Handshake(); err != nil {
				t.Fatal(err)
			}
			peer = tc
		}
		nc := <-ch
		if nc == nil {
			t.Fatal("accept failed")
		}
		c = NewStreamConn(nc, o)
		t.Cleanup(func() { c.Abort(); _ = peer.Close() })
		return c, peer
	}
	scheme := "ws://"
	var sln net.Listener = ln
	if serverTLS != nil {
		scheme, sln = "wss://", tls.NewListener(ln, serverTLS)
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
	go func() { _ = srv.Serve(sln) }()
	dialer := websocket.Dialer{NetDial: d.Dial, TLSClientConfig: clientTLS}
	ws, _, err := dialer.Dial(scheme+ln.Addr().String()+WSPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	c = <-srvConn
	t.Cleanup(func() {
		c.Abort()
		_ = ws.Close()
		close(release)
		_ = srv.Shutdown()
	})
	return c, ws.NetConn()
}

// readerWakes starts the owner's reader, blocked in ReadFrame as a server's
// is while its peer sends nothing, and returns what it ends with.
func readerWakes(c *Conn) <-chan error {
	ch := make(chan error, 1)
	go func() {
		for {
			if _, err := c.ReadFrame(); err != nil {
				ch <- err
				return
			}
		}
	}()
	return ch
}

// awaitClosed checks that the reader woke within d and that the writer
// stopped and holds no buffer.
func awaitClosed(t *testing.T, c *Conn, woke <-chan error, d time.Duration) {
	t.Helper()
	select {
	case err := <-woke:
		t.Logf("reader woke with: %v", err)
	case <-time.After(d):
		t.Fatalf("the connection was not closed within %v: the reader is still blocked", d)
	}
	select {
	case <-c.Done():
	case <-time.After(d):
		t.Fatal("the writer did not stop")
	}
	if r, w := c.retained(); r != 0 || w != 0 || c.Pending() != 0 {
		t.Errorf("a closed connection holds %d + %d bytes of buffer, %d pending; want none", r, w, c.Pending())
	}
}

// peerSeesClose reads what the peer was sent until the connection ends.
func peerSeesClose(t *testing.T, peer net.Conn) {
	t.Helper()
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.Copy(io.Discard, peer)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the peer's socket is still open (read %d bytes, then nothing)", n)
	}
}

// slowPeerBindings are the bindings the slow-peer tests run on: plain,
// and inside TLS, where the socket has no descriptor for non-blocking
// writes (a *tls.Conn is no syscall.Conn) and every batch is written by a
// flusher goroutine under the write timeout.
var slowPeerBindings = []string{"tcp", "ws", "tls", "wss"}

func TestSlowPeerClosedWhenQueueOverflows(t *testing.T) {
	for _, binding := range slowPeerBindings {
		t.Run(binding, func(t *testing.T) {
			// The write timeout is long: only the queue limit can cut the peer off.
			c, peer := slowPeerPair(t, binding, ConnOptions{Limits: Limits{
				MaxFrame: 64 << 10, MaxPendingWrite: 256 << 10, WriteTimeout: time.Minute}})
			woke := readerWakes(c)
			f := &Frame{Type: TypePong, Body: make([]byte, 32<<10)}
			var err error
			sent := 0
			for ; sent < 100000 && err == nil; sent++ { // the peer never reads
				err = c.Send(f)
			}
			if err != ErrSlowPeer {
				t.Fatalf("after %d frames: err = %v, want ErrSlowPeer", sent, err)
			}
			awaitClosed(t, c, woke, 5*time.Second)
			peerSeesClose(t, peer)
		})
	}
}

func TestSlowPeerClosedAfterWriteTimeout(t *testing.T) {
	for _, binding := range slowPeerBindings {
		for _, block := range []bool{false, true} {
			name := binding + "/nonblocking"
			if block {
				name = binding + "/blocking"
			}
			t.Run(name, func(t *testing.T) {
				// The queue is large: only the write timeout can cut the peer off.
				const timeout = 200 * time.Millisecond
				c, peer := slowPeerPair(t, binding, ConnOptions{BlockWhenFull: block, Limits: Limits{
					MaxFrame: 64 << 10, MaxPendingWrite: 64 << 20, WriteTimeout: timeout}})
				woke := readerWakes(c)
				f := &Frame{Type: TypePong, Body: make([]byte, 32<<10)}
				start := time.Now()
				for i := 0; i < 512; i++ { // 16 MiB: more than socket buffers hold, less than the queue
					if err := c.Send(f); err != nil {
						t.Logf("send %d: %v", i, err)
						break
					}
				}
				awaitClosed(t, c, woke, 5*time.Second)
				if err := c.Err(); err == nil || errors.Is(err, ErrSlowPeer) {
					t.Errorf("writer stopped with %v, want a write timeout", err)
				}
				t.Logf("closed %v after the first write", time.Since(start).Round(time.Millisecond))
				peerSeesClose(t, peer)
			})
		}
	}
}
