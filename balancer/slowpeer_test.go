package balancer

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/protocol"
)

// wireClient is a client that speaks frames on a raw socket (TCP, or a
// WebSocket with small buffers), so that the test decides exactly what is
// read and what is held.
type wireClient struct {
	nc net.Conn        // the socket
	ws *websocket.Conn // nil for TCP
}

// smallRcvbuf sets a 4 KiB receive buffer before the handshake, so that a
// client that does not read stalls the proxy's writes quickly.
func smallRcvbuf(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
	}); err != nil {
		return err
	}
	return serr
}

func dialWire(t *testing.T, p *Proxy, binding string, small bool) *wireClient {
	t.Helper()
	d := net.Dialer{}
	if small {
		d.Control = smallRcvbuf
	}
	c := &wireClient{}
	if binding == "tcp" {
		nc, err := d.Dial("tcp", p.Addrs().TCP)
		if err != nil {
			t.Fatal(err)
		}
		c.nc = nc
	} else {
		wd := websocket.Dialer{NetDial: d.Dial, ReadBufferSize: 1024, WriteBufferSize: 1024}
		ws, _, err := wd.Dial("ws://"+p.Addrs().WS+protocol.WSPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.nc, c.ws = ws.NetConn(), ws
	}
	t.Cleanup(func() { _ = c.nc.Close() })
	return c
}

// send writes one encoded frame in the binding's framing.
func (c *wireClient) send(frame []byte) error {
	if c.ws != nil {
		return c.ws.WriteMessage(websocket.BinaryMessage, frame)
	}
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(frame)))
	_, err := (&net.Buffers{l[:], frame}).WriteTo(c.nc)
	return err
}

// recv reads one frame and returns its type and size, keeping nothing.
func (c *wireClient) recv() (protocol.Type, int, error) {
	var r io.Reader
	if c.ws != nil {
		_, mr, err := c.ws.NextReader()
		if err != nil {
			return 0, 0, err
		}
		r = mr
	} else {
		var l [4]byte
		if _, err := io.ReadFull(c.nc, l[:]); err != nil {
			return 0, 0, err
		}
		r = io.LimitReader(c.nc, int64(binary.BigEndian.Uint32(l[:])))
	}
	var h [protocol.HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, 0, err
	}
	n, err := io.Copy(io.Discard, r)
	return protocol.Type(h[1]), protocol.HeaderSize + int(n), err
}

func encode(t testing.TB, f *protocol.Frame) []byte {
	b, err := protocol.AppendFrame(nil, f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bigPing is a PING of close to the default 1 MiB frame limit: the proxy
// answers it with a PONG of the same size.
func bigPing(t testing.TB) []byte {
	return encode(t, &protocol.Frame{Type: protocol.TypePing, CallID: 1,
		Body: make([]byte, protocol.DefaultMaxFrame-protocol.HeaderSize-64)})
}

// heapInuse returns the heap in use once collections have emptied the
// buffer pools (sync.Pool keeps a buffer for up to two).
func heapInuse() int64 {
	var m runtime.MemStats
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// TestSlowClientsAreCutOff: clients that send large PINGs and never read
// the PONGs are disconnected within a bound set by the write timeout, or
// as soon as the replies waiting for them pass the queue limit; a client
// that reads keeps being served meanwhile, and the memory the slow ones
// cost is freed.
func TestSlowClientsAreCutOff(t *testing.T) {
	const writeTimeout = 500 * time.Millisecond
	const perBinding = 10
	gs := startGateways(t, 1, nil)
	p := startProxy(t, gs, func(c *Config) {
		c.Limits.WriteTimeout = writeTimeout
		c.SessionIdle = time.Second
	})

	// The well-behaved client calls all along.
	good := dialProxy(t, proxyTargets(p)["tcp"])
	var calls, failures atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s := good.Session()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := s.CallStateless(ctx, "orders@1.Orders.GetOrder", "o-1")
			cancel()
			calls.Add(1)
			if err != nil {
				failures.Add(1)
				lastErr.Store(err.Error())
			}
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
	}()
	proctest.Eventually(t, 5*time.Second, "the good client's first calls", func() bool { return calls.Load() > 10 })
	before := heapInuse()

	hello := encode(t, &protocol.Frame{Type: protocol.TypeHello})
	ping := bigPing(t)
	var slow []*wireClient
	for _, binding := range []string{"tcp", "ws"} {
		for i := 0; i < perBinding; i++ {
			slow = append(slow, dialWire(t, p, binding, true))
		}
	}
	proctest.Eventually(t, 5*time.Second, "every slow client connected", func() bool {
		return p.admission.Conns() == int64(1+len(slow))
	})
	var sending sync.WaitGroup
	for i, c := range slow {
		// Half send more than the queue holds (cut off at once), half
		// less than the queue and more than the socket buffers hold (cut
		// off by the write timeout).
		n := 12
		if i%2 == 1 {
			n = 7
		}
		sending.Add(1)
		go func() {
			defer sending.Done()
			if c.send(hello) != nil {
				return
			}
			for j := 0; j < n; j++ {
				if c.send(ping) != nil {
					return // cut off already
				}
			}
		}()
	}
	sending.Wait()
	// Every PING is read by now; the last PONGs wait for the peer.
	bound := 2*writeTimeout + 3*time.Second // slack for a loaded machine
	start := time.Now()
	proctest.Eventually(t, bound, "the proxy to close every slow client", func() bool { return p.admission.Conns() == 1 })
	t.Logf("slow clients closed %v after their last PING", time.Since(start).Round(time.Millisecond))
	for i, c := range slow {
		_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := io.Copy(io.Discard, c.nc)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("slow client %d: its socket is still open (read %d bytes, then nothing)", i, n)
		}
	}

	// A closed connection stays referenced by its session until the
	// session idles out (SessionIdle, 1s here), and with it the last frame
	// it read (downstream.f): wait for that, then for the heap to be back.
	proctest.Eventually(t, 10*time.Second, "the slow clients' sessions forgotten", func() bool { return p.sessions.len() == 1 })
	after := heapInuse()
	if after-before > 4<<20 {
		t.Errorf("heap grew by %d KiB after the slow clients were gone, want under 4 MiB", (after-before)>>10)
	}
	t.Logf("heap in use: %d KiB before the slow clients, %d KiB after", before>>10, after>>10)
	if n := failures.Load(); n > 0 {
		t.Errorf("the well-behaved client had %d failed calls of %d (last: %v)", n, calls.Load(), lastErr.Load())
	}
	got := calls.Load()
	proctest.Eventually(t, 5*time.Second, "the well-behaved client served after the flood", func() bool { return calls.Load() > got+10 })
}

// TestIdleConnsAfterLargeFrame: connections that once sent a large frame
// (a 1 MiB PING, echoed) and then sit idle hold little memory.
func TestIdleConnsAfterLargeFrame(t *testing.T) {
	const conns = 40
	const maxPerConn = 128 << 10
	gs := startGateways(t, 1, nil)
	p := startProxy(t, gs, nil)
	hello := encode(t, &protocol.Frame{Type: protocol.TypeHello})
	ping := bigPing(t)
	small := encode(t, &protocol.Frame{Type: protocol.TypePing, CallID: 2})
	for _, binding := range []string{"tcp", "ws"} {
		t.Run(binding, func(t *testing.T) {
			before := heapInuse()
			var cs []*wireClient
			for i := 0; i < conns; i++ {
				c := dialWire(t, p, binding, false)
				// HELLO, the large PING, then a small one: its PONG comes
				// after the proxy has handled the large one.
				for _, f := range [][]byte{hello, ping, small} {
					if err := c.send(f); err != nil {
						t.Fatal(err)
					}
				}
				for _, want := range []protocol.Type{protocol.TypeWelcome, protocol.TypePong, protocol.TypePong} {
					if typ, _, err := c.recv(); err != nil || typ != want {
						t.Fatalf("conn %d: got %v (%v), want %v", i, typ, err, want)
					}
				}
				cs = append(cs, c)
			}
			after := heapInuse()
			per := (after - before) / conns
			t.Logf("%s: heap in use %d KiB before, %d KiB with %d idle connections: %d KiB each (proxy and test client)",
				binding, before>>10, after>>10, conns, per>>10)
			if per > maxPerConn {
				t.Errorf("%d KiB of heap per idle connection after one large frame, want under %d KiB", per>>10, maxPerConn>>10)
			}
			for _, c := range cs {
				_ = c.nc.Close()
			}
			proctest.Eventually(t, 5*time.Second, "the proxy to see the clients go", func() bool { return p.admission.Conns() == 0 })
		})
	}
}
