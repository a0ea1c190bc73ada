package protocol

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
)

// WSPath is the HTTP path of the WebSocket binding.
const WSPath = "/ws"

// Buffer sizes for the WebSocket library's connections, for servers'
// upgraders and for dialers. Its read buffer holds only frame headers and
// small messages: larger reads go straight into the frame buffer, which is
// pooled (see wsReader). Its write buffer is taken from WSWriteBufferPool
// for one message at a time, so an idle connection holds none; a larger
// message is written from the batch directly.
const (
	WSReadBufferSize  = 1 << 10
	WSWriteBufferSize = 4 << 10
)

var wsWritePool sync.Pool

// WSWriteBufferPool returns the pool of WSWriteBufferSize write buffers
// that every WebSocket connection of the process shares.
func WSWriteBufferPool() websocket.BufferPool { return &wsWritePool }

// Conn is one protocol connection over either binding: TCP (length-prefixed
// frames) or WebSocket (one frame per binary message). Reads happen on the
// owner's goroutine; writes may come from any goroutine and are batched by
// the connection's Writer. A peer that does not read what is written to it
// within the write timeout, or lets more than Limits.MaxPendingWrite pile
// up (see Writer), has its socket closed: the owner's ReadFrame then fails
// and the owner ends the connection as for any other read error.
//
// Large frames cost memory only while they are handled: a buffer grown for
// one goes back to a pool at the next ReadFrame, or once its batch is
// written (see StreamReader and Writer).
type Conn struct {
	reader interface {
		ReadFrame() ([]byte, error)
		retained() int
	}
	*Writer
	nc        net.Conn
	ws        *websocket.Conn
	closeOnce sync.Once
	closeErr  error
}

// ConnOptions configure a Conn.
type ConnOptions struct {
	Limits Limits
	// BlockWhenFull makes writers wait for room instead of failing with
	// ErrSlowPeer when the peer does not keep up (see Writer).
	BlockWhenFull bool
}

// NewStreamConn wraps a TCP (or any stream) connection.
func NewStreamConn(nc net.Conn, o ConnOptions) *Conn {
	l := o.Limits.WithDefaults()
	c := &Conn{nc: nc, reader: NewStreamReader(nc, l.MaxFrame)}
	c.Writer = newWriter(streamSink{nc: nc, timeout: l.WriteTimeout}, l.MaxPendingWrite, o.BlockWhenFull)
	return c
}

// NewWSConn wraps an established WebSocket connection.
func NewWSConn(ws *websocket.Conn, o ConnOptions) *Conn {
	l := o.Limits.WithDefaults()
	ws.SetReadLimit(int64(l.MaxFrame)) // a message declared larger is refused from its header: close 1009
	nc := ws.NetConn()
	// fasthttp hands a WebSocket handler a wrapper whose Close does nothing
	// (the server closes the socket when the handler returns); closing the
	// real socket is what wakes a blocked reader.
	if u, ok := nc.(interface{ UnsafeConn() net.Conn }); ok && u.UnsafeConn() != nil {
		nc = u.UnsafeConn()
	}
	c := &Conn{nc: nc, ws: ws, reader: &wsReader{ws: ws, max: l.MaxFrame}}
	c.Writer = newWriter(wsSink{ws: ws, nc: nc, timeout: l.WriteTimeout}, l.MaxPendingWrite, o.BlockWhenFull)
	return c
}

// ReadFrame returns the next frame; the slice is valid until the next call.
func (c *Conn) ReadFrame() ([]byte, error) { return tooLarge(c.reader.ReadFrame()) }

// SetReadDeadline bounds the next reads (idle and HELLO timeouts).
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.ws != nil {
		return c.ws.SetReadDeadline(t)
	}
	return c.nc.SetReadDeadline(t)
}

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// LocalAddr returns the local address.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// IsWebSocket reports whether c uses the WebSocket binding.
func (c *Conn) IsWebSocket() bool { return c.ws != nil }

// Close flushes what is queued (bounded by the write timeout) and closes
// the connection. A WebSocket peer gets a close message first. It is safe to
// call more than once and from any goroutine.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		werr := c.Writer.Close()
		failed := c.Writer.Err() != nil // the writer closed the socket
		if c.ws != nil && !failed {
			_ = c.ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		}
		if err := c.nc.Close(); !failed {
			c.closeErr = err
		}
		if werr != nil && !errors.Is(werr, net.ErrClosed) {
			c.closeErr = werr
		}
	})
	return c.closeErr
}

// Linger closes the connection so that the peer reads everything queued
// before the close, such as the ERROR that explains it: it flushes the
// queue, sends a WebSocket peer a close message, then closes as
// LingerClose does (half-close, read and discard what the peer still
// sends until it closes or d passes, close). Only the goroutine that
// reads from c may call it. A WebSocket peer gets close
// code 1000 (normal); LingerProtocolError sends 1002.
func (c *Conn) Linger(d time.Duration) { c.linger(d, websocket.CloseNormalClosure) }

// LingerProtocolError is Linger after a protocol error: a WebSocket peer
// gets close code 1002 (SPEC.md section 6).
func (c *Conn) LingerProtocolError(d time.Duration) { c.linger(d, websocket.CloseProtocolError) }

func (c *Conn) linger(d time.Duration, wsCode int) {
	c.closeOnce.Do(func() {
		_ = c.Writer.Close()
		if c.Writer.Err() != nil { // the writer closed the socket
			c.closeErr = c.nc.Close()
			return
		}
		if c.ws != nil {
			_ = c.ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(wsCode, ""), time.Now().Add(time.Second))
		}
		c.closeErr = LingerClose(c.nc, d)
	})
}

// Abort closes the socket at once, dropping what is queued: the Writer's
// goroutine fails its write and stops.
func (c *Conn) Abort() {
	_ = c.nc.Close()
	_ = c.Close()
}

type streamSink struct {
	nc      net.Conn
	timeout time.Duration
}

func (s streamSink) writeBatch(b []byte) error {
	if err := s.nc.SetWriteDeadline(time.Now().Add(s.timeout)); err != nil {
		return err
	}
	_, err := s.nc.Write(b)
	return err
}

func (s streamSink) abort() { reset(s.nc) }

// reset closes nc so that the kernel drops what it still holds for the peer
// (a TCP reset) instead of keeping it for a peer that does not read.
func reset(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = nc.Close()
}

type wsSink struct {
	ws      *websocket.Conn
	nc      net.Conn // the socket under ws
	timeout time.Duration
}

func (s wsSink) abort() { reset(s.nc) }

func (s wsSink) writeBatch(b []byte) error {
	if err := s.ws.SetWriteDeadline(time.Now().Add(s.timeout)); err != nil {
		return err
	}
	for len(b) >= 4 {
		n := int(binary.BigEndian.Uint32(b))
		if err := s.ws.WriteMessage(websocket.BinaryMessage, b[4:4+n]); err != nil {
			return err
		}
		b = b[4+n:]
	}
	return nil
}

// wsReader reads one frame per binary message, into a pooled buffer that
// goes back at the next call: an idle connection holds none.
type wsReader struct {
	ws   *websocket.Conn
	max  int
	pb   *pooledBuf
	held atomic.Int64
}

var errTextMessage = &Error{Code: CodeBadFrame, Message: "WebSocket text message; frames are binary messages"}

func (r *wsReader) ReadFrame() ([]byte, error) {
	putBuf(r.pb) // the previous frame is no longer in use
	r.pb = nil
	r.held.Store(0)
	mt, rd, err := r.ws.NextReader()
	if err != nil {
		return nil, err
	}
	if mt != websocket.BinaryMessage {
		return nil, errTextMessage
	}
	p := getBuf(1)
	n := 0
	for {
		if n == len(p.b) {
			if n > r.max {
				putBuf(p)
				return nil, errFrameTooLarge
			}
			q := getBuf(min(2*n, r.max+1))
			copy(q.b, p.b[:n])
			putBuf(p)
			p = q
		}
		m, err := rd.Read(p.b[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			putBuf(p)
			return nil, err
		}
	}
	if n > r.max {
		putBuf(p)
		return nil, errFrameTooLarge
	}
	r.pb = p
	r.held.Store(int64(len(p.b)))
	return p.b[:n:n], nil
}

func (r *wsReader) retained() int { return int(r.held.Load()) }

// retained returns the bytes of buffer c holds for its frames (not
// counting the WebSocket library's own buffers).
func (c *Conn) retained() (reader, writer int) {
	return c.reader.retained(), c.Writer.retained()
}
