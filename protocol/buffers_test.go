package protocol

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/internal/tlsfiles/tlstest"
	"github.com/valyala/fasthttp"
)

// connPairs returns n pairs of connected Conns over loopback: a[i] dialed,
// b[i] accepted. WebSocket pairs share one fasthttp server.
func connPairs(t *testing.T, binding string, n int) (a, b []*Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan *Conn, n)
	var srv *fasthttp.Server
	release := make(chan struct{})
	var clientTLS *tls.Config
	if binding == "tls" { // TCP inside TLS
		ca := tlstest.NewCA(t, "pairs")
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{ca.Server(t, "server").TLS(t)}})
		clientTLS = &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
	}
	if binding == "tcp" || binding == "tls" {
		go func() {
			for {
				nc, err := ln.Accept()
				if err != nil {
					return
				}
				accepted <- NewStreamConn(nc, ConnOptions{})
			}
		}()
	} else {
		up := websocket.FastHTTPUpgrader{}
		srv = &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
			_ = up.Upgrade(ctx, func(ws *websocket.Conn) {
				accepted <- NewWSConn(ws, ConnOptions{})
				<-release
			})
		}}
		go func() { _ = srv.Serve(ln) }()
	}
	for i := 0; i < n; i++ {
		var c *Conn
		if binding == "tcp" || binding == "tls" {
			nc, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			if clientTLS != nil {
				nc = tls.Client(nc, clientTLS)
			}
			c = NewStreamConn(nc, ConnOptions{})
		} else {
			d := websocket.Dialer{ReadBufferSize: 1024, WriteBufferSize: 1024}
			ws, _, err := d.Dial("ws://"+ln.Addr().String()+WSPath, nil)
			if err != nil {
				t.Fatal(err)
			}
			c = NewWSConn(ws, ConnOptions{})
		}
		a = append(a, c)
		b = append(b, <-accepted)
	}
	t.Cleanup(func() {
		for i := range a {
			a[i].Abort()
			b[i].Abort()
		}
		close(release)
		_ = ln.Close()
		if srv != nil {
			_ = srv.Shutdown()
		}
	})
	return a, b
}

// bigFrame is a legal frame close to the default 1 MiB limit.
func bigFrame(t testing.TB) []byte {
	b, err := AppendFrame(nil, &Frame{Type: TypePing, Body: make([]byte, DefaultMaxFrame-HeaderSize-64)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// exchange has b echo every frame it reads, and a send one big frame and
// read the echo; both then wait in ReadFrame, as idle connections do.
func exchange(t *testing.T, a, b *Conn, frame []byte) {
	t.Helper()
	go func() {
		for {
			f, err := b.ReadFrame()
			if err != nil || b.WriteFrame(f) != nil {
				return
			}
		}
	}()
	if err := a.WriteFrame(frame); err != nil {
		t.Fatal(err)
	}
	echo, err := a.ReadFrame()
	if err != nil || len(echo) != len(frame) {
		t.Fatalf("echo: %d bytes, %v", len(echo), err)
	}
	go func() {
		for {
			if _, err := a.ReadFrame(); err != nil {
				return
			}
		}
	}()
}

// TestLargeFrameBuffersGoBack: after one large frame in each direction,
// an idle connection holds only its small read buffer.
func TestLargeFrameBuffersGoBack(t *testing.T) {
	for _, binding := range []string{"tcp", "ws"} {
		t.Run(binding, func(t *testing.T) {
			a, b := connPairs(t, binding, 1)
			exchange(t, a[0], b[0], bigFrame(t))
			small := readBufferSize
			if binding == "ws" {
				small = 0
			}
			for _, c := range []*Conn{a[0], b[0]} {
				proctest.Eventually(t, 5*time.Second, "an idle connection holding small buffers only", func() bool {
					r, w := c.retained()
					return r <= small && w == 0
				})
			}
		})
	}
}

// TestIdleTLSConnHeap measures the heap of idle connection pairs (both
// ends in this process) that exchanged one small frame, plain and inside
// TLS: what an idle TLS client costs a server, on top of a plain one, is
// about half the difference (crypto/tls keeps its record buffers and
// session state per connection).
func TestIdleTLSConnHeap(t *testing.T) {
	const pairs = 100
	maxPerPair := map[bool]int64{false: 16 << 10, true: 96 << 10}
	frame, err := AppendFrame(nil, &Frame{Type: TypePing, Body: make([]byte, 100)})
	if err != nil {
		t.Fatal(err)
	}
	perPair := map[string]int64{}
	for _, binding := range []string{"tcp", "tls"} {
		t.Run(binding, func(t *testing.T) {
			before := heapInuse()
			a, b := connPairs(t, binding, pairs)
			for i := range a {
				exchange(t, a[i], b[i], frame)
			}
			after := heapInuse()
			per := (int64(after) - int64(before)) / pairs
			perPair[binding] = per
			t.Logf("%s: %.1f KiB of heap per idle connection pair", binding, float64(per)/1024)
			if limit := maxPerPair[binding == "tls"]; per > limit {
				t.Errorf("%s: %d KiB of heap per idle connection pair, want <= %d KiB", binding, per>>10, limit>>10)
			}
			runtime.KeepAlive(a)
			runtime.KeepAlive(b)
		})
	}
	t.Logf("TLS adds %.1f KiB per idle pair (both ends)", float64(perPair["tls"]-perPair["tcp"])/1024)
}

// TestIdleConnHeapAfterLargeFrame measures the heap of many idle
// connection pairs that each exchanged one large frame both ways.
func TestIdleConnHeapAfterLargeFrame(t *testing.T) {
	const pairs = 40
	const maxPerPair = 64 << 10 // both ends, the WebSocket library's buffers included
	// crypto/tls keeps the record buffers a large frame grew (input and
	// output, up to a 16 KiB record and more each) for the connection's
	// life: about 55 KiB per end after a 1 MiB frame, against 2 plain.
	const maxPerTLSPair = 160 << 10
	frame := bigFrame(t)
	for _, binding := range []string{"tcp", "ws", "tls"} {
		t.Run(binding, func(t *testing.T) {
			before := heapInuse()
			a, b := connPairs(t, binding, pairs)
			for i := range a {
				exchange(t, a[i], b[i], frame)
			}
			proctest.Eventually(t, 5*time.Second, "every connection idle", func() bool {
				for i := range a {
					for _, c := range []*Conn{a[i], b[i]} {
						if r, w := c.retained(); r > readBufferSize || w != 0 {
							return false
						}
					}
				}
				return true
			})
			after := heapInuse()
			per := (int64(after) - int64(before)) / pairs
			t.Logf("%s: heap in use %d KiB before, %d KiB after: %d KiB per idle pair", binding, before>>10, after>>10, per>>10)
			limit := int64(maxPerPair)
			if binding == "tls" {
				limit = maxPerTLSPair
			}
			if per > limit {
				t.Errorf("%d KiB of heap per idle connection pair after one large frame, want <= %d KiB", per>>10, limit>>10)
			}
			runtime.KeepAlive(a)
			runtime.KeepAlive(b)
		})
	}
}

// heapInuse returns the heap in use after collections have emptied the
// buffer pools (sync.Pool keeps a buffer for up to two).
func heapInuse() uint64 {
	var m runtime.MemStats
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// chunkReader returns its data in reads of pseudo-random sizes, as a
// socket does.
type chunkReader struct {
	data []byte
	seed uint32
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	c.seed = c.seed*1664525 + 1013904223
	n := min(len(p), len(c.data), 1+int(c.seed>>8)%(96<<10))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// TestStreamReaderMixedSizes reads frames of every size class in chunked
// reads (through the small buffer, the burst buffer and buffers of the
// frame's size) and checks every byte, then that the reader keeps only its
// own buffer.
func TestStreamReaderMixedSizes(t *testing.T) {
	var stream []byte
	var frames [][]byte
	seed := uint32(7)
	for i := 0; i < 600; i++ {
		seed = seed*1664525 + 1013904223
		var n int
		switch seed >> 29 {
		case 0:
			n = int(seed>>8) % (300 << 10) // large
		case 1, 2:
			n = int(seed>>8) % (8 << 10) // around the small buffer
		default:
			n = int(seed>>8) % 300 // small
		}
		f := make([]byte, n)
		for j := range f {
			f[j] = byte(i + j)
		}
		frames = append(frames, f)
		stream = binary.BigEndian.AppendUint32(stream, uint32(n))
		stream = append(stream, f...)
	}
	r := NewStreamReader(&chunkReader{data: stream, seed: 1}, 1<<20)
	for i, want := range frames {
		got, err := r.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("frame %d (%d bytes) mangled (got %d bytes)", i, len(want), len(got))
		}
		if cap(got) != len(got) {
			t.Fatalf("frame %d: cap %d > len %d: an append would overwrite the next frame", i, cap(got), len(got))
		}
	}
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("at end: %v, want EOF", err)
	}
	if n := r.retained(); n != 0 {
		t.Errorf("reader holds %d bytes after the end of its stream, want none", n)
	}
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("after the end: %v, want EOF again", err)
	}
}

func TestBufferClasses(t *testing.T) {
	for _, n := range []int{1, 4096, 4097, 6144, 6145, 8192, 1 << 20, 1<<20 + 4, 2 << 20, 2<<20 + 1, 9 << 20} {
		p := getBuf(n)
		if len(p.b) < n || (n > 4096 && len(p.b) > n+n/2) {
			t.Errorf("getBuf(%d): %d bytes", n, len(p.b))
		}
		if pooled := p.class >= 0; pooled != (n <= 2<<20) {
			t.Errorf("getBuf(%d): pooled = %v", n, pooled)
		}
		putBuf(p)
	}
}

// TestStreamReaderQuietAfterLargeFrame: a peer that sends a large frame and
// part of the next, then goes quiet, leaves the reader holding a buffer for
// what it has of the next frame, not one of the large frame's size.
func TestStreamReaderQuietAfterLargeFrame(t *testing.T) {
	a, b := tcpPair(t)
	defer a.Close()
	defer b.Close()
	big := make([]byte, 600<<10)
	stream := binary.BigEndian.AppendUint32(nil, uint32(len(big)))
	stream = append(stream, big...)
	stream = binary.BigEndian.AppendUint32(stream, 20<<10)
	stream = append(stream, make([]byte, 10<<10)...) // half of the next frame
	if _, err := a.Write(stream); err != nil {
		t.Fatal(err)
	}
	r := NewStreamReader(b, 1<<20)
	if f, err := r.ReadFrame(); err != nil || len(f) != len(big) {
		t.Fatalf("large frame: %d bytes, %v", len(f), err)
	}
	proctest.Eventually(t, 5*time.Second, "the rest of the stream buffered", func() bool {
		return r.retained() > readBufferSize // the large frame's buffer, read ahead
	})
	go func() { _, _ = r.ReadFrame() }() // waits for the rest of the frame
	proctest.Eventually(t, 5*time.Second, "a reader waiting with a small buffer", func() bool {
		return r.retained() <= readBufferSize+burstBufferSize
	})
}
