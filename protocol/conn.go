package protocol

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
)

// WSPath is the HTTP path of the WebSocket binding.
const WSPath = "/ws"

// Conn is one protocol connection over either binding: TCP (length-prefixed
// frames) or WebSocket (one frame per binary message). Reads happen on the
// owner's goroutine; writes may come from any goroutine and are batched by
// the connection's Writer.
type Conn struct {
	reader interface{ ReadFrame() ([]byte, error) }
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
	c.Writer = newWriter(wsSink{ws: ws, timeout: l.WriteTimeout}, l.MaxPendingWrite, o.BlockWhenFull)
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
		if c.ws != nil {
			_ = c.ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		}
		c.closeErr = c.nc.Close()
		if werr != nil && !errors.Is(werr, net.ErrClosed) {
			c.closeErr = werr
		}
	})
	return c.closeErr
}

// Linger closes the connection so that the peer reads everything queued
// before the close, such as the ERROR that explains it: it flushes the
// queue, half-closes (a WebSocket close message, or TCP FIN), then reads
// and discards what the peer still sends until it closes or d passes, and
// closes. Without the wait, unread data from the peer would make the
// kernel answer with a reset that can destroy the ERROR in flight. Only
// the goroutine that reads from c may call it.
func (c *Conn) Linger(d time.Duration) {
	c.closeOnce.Do(func() {
		werr := c.Writer.Close()
		if c.ws != nil {
			_ = c.ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		} else if cw, ok := c.nc.(interface{ CloseWrite() error }); ok && werr == nil {
			_ = cw.CloseWrite()
		}
		if werr == nil {
			_ = c.nc.SetReadDeadline(time.Now().Add(d))
			var buf [4096]byte
			for {
				if _, err := c.nc.Read(buf[:]); err != nil {
					break
				}
			}
		}
		c.closeErr = c.nc.Close()
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

type wsSink struct {
	ws      *websocket.Conn
	timeout time.Duration
}

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

// wsReader reads one frame per binary message.
type wsReader struct {
	ws  *websocket.Conn
	max int
	buf []byte
}

var errTextMessage = &Error{Code: CodeBadFrame, Message: "WebSocket text message; frames are binary messages"}

func (r *wsReader) ReadFrame() ([]byte, error) {
	mt, rd, err := r.ws.NextReader()
	if err != nil {
		return nil, err
	}
	if mt != websocket.BinaryMessage {
		return nil, errTextMessage
	}
	if r.buf == nil {
		r.buf = make([]byte, 4096)
	}
	n := 0
	for {
		if n == len(r.buf) {
			if n > r.max {
				return nil, errFrameTooLarge
			}
			grow := 2 * len(r.buf)
			if grow > r.max+1 {
				grow = r.max + 1
			}
			nb := make([]byte, grow)
			copy(nb, r.buf[:n])
			r.buf = nb
		}
		m, err := rd.Read(r.buf[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if n > r.max {
		return nil, errFrameTooLarge
	}
	return r.buf[:n], nil
}
