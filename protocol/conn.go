package protocol

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fasthttp/websocket"
)

// WSPath is the HTTP path of the WebSocket binding.
const WSPath = "/ws"

// Buffer sizes for the WebSocket library's connections, for servers'
// upgraders and for dialers. Its read buffer holds only frame headers and
// small messages: larger reads go straight into the frame buffer, which is
// pooled (see wsReader). Messages are framed and written by the Conn's
// Writer, not the library: its write buffer, taken from WSWriteBufferPool
// for one message at a time, serves only the handshake's and the close
// frames, so an idle connection holds none.
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
		buffered() bool
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
	c.Writer = newWriter(newStreamSink(nc, l.WriteTimeout), streamFraming, l.MaxPendingWrite, o.BlockWhenFull)
	return c
}

// NewWSConn wraps an established WebSocket connection.
func NewWSConn(ws *websocket.Conn, o ConnOptions) *Conn {
	l := o.Limits.WithDefaults()
	ws.SetReadLimit(int64(l.MaxFrame)) // a message declared larger is refused from its header: close 1009
	nc := ws.NetConn()
	// fasthttp hands a WebSocket handler a wrapper whose Close does nothing
	// (the server closes the socket when the handler returns); closing the
	// real socket is what wakes a blocked reader. That wrapper is also how
	// a server's connection is told from a dialed one, whose messages are
	// masked (RFC 6455 section 5.3).
	fr := wsClientFraming
	if u, ok := nc.(interface{ UnsafeConn() net.Conn }); ok && u.UnsafeConn() != nil {
		nc, fr = u.UnsafeConn(), wsServerFraming
	}
	wr := &wsReader{ws: ws, max: l.MaxFrame}
	if sc, ok := nc.(syscall.Conn); ok {
		wr.rc, _ = sc.SyscallConn()
	}
	c := &Conn{nc: nc, ws: ws, reader: wr}
	c.Writer = newWriter(newStreamSink(nc, l.WriteTimeout), fr, l.MaxPendingWrite, o.BlockWhenFull)
	// Every write goes through the Writer, which frames the messages
	// itself: the library must not write a pong or a close echo between
	// the parts of a batch. A pong is queued; the close is answered by
	// Close or Linger, once what is queued is written.
	ws.SetPingHandler(func(data string) error {
		_ = c.Writer.control(wsPong, data)
		return nil
	})
	ws.SetCloseHandler(func(int, string) error { return nil })
	return c
}

// ReadFrame returns the next frame; the slice is valid until the next call.
func (c *Conn) ReadFrame() ([]byte, error) { return tooLarge(c.reader.ReadFrame()) }

// FlushBeforeRead makes the reader flush b before it reads from the
// socket: on the TCP binding when the socket has nothing more (the read
// would wait), so that a reader that queued on b what it handled writes
// each destination once for every frame of one read; on the WebSocket
// binding before a message when the socket holds no unread bytes (on
// Linux; elsewhere before each message). Only the reading goroutine may
// use b.
func (c *Conn) FlushBeforeRead(b *Batch) {
	switch r := c.reader.(type) {
	case *StreamReader:
		r.batch = b
	case *wsReader:
		r.batch = b
	}
}

// Buffered reports whether the next frame is already read from the socket
// whole, so that ReadFrame returns it without a system call: a reader that
// queues what it handles (Batch) flushes when it is false, before a read
// that may wait. It is always false on the WebSocket binding, whose
// library does not tell.
func (c *Conn) Buffered() bool { return c.reader.buffered() }

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

// Abort closes the socket at once, dropping what is queued: a write in
// progress fails and the Writer stops.
func (c *Conn) Abort() {
	_ = c.nc.Close()
	_ = c.Close()
}

// streamSink writes batches to a socket: at once, without waiting, when it
// has a descriptor (a TCP or Unix socket), else always with the timeout.
type streamSink struct {
	nc      net.Conn
	rc      syscall.RawConn // nil: no non-blocking writes
	timeout time.Duration

	// The non-blocking write in progress: one at a time (Writer.writing).
	b    []byte
	n    int
	werr error
	try  func(fd uintptr) bool // s.writeFD, bound once
}

func newStreamSink(nc net.Conn, timeout time.Duration) *streamSink {
	s := &streamSink{nc: nc, timeout: timeout}
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			s.rc, s.try = rc, s.writeFD
		}
	}
	return s
}

func (s *streamSink) tryWrite(b []byte) (int, error) {
	if s.rc == nil {
		return 0, nil
	}
	s.b, s.n, s.werr = b, 0, nil
	err := s.rc.Write(s.try)
	n, werr := s.n, s.werr
	s.b = nil
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return 0, nil // a write deadline left over: the waiting write sets its own
	case err != nil:
		return 0, err
	}
	return n, werr
}

// writeFD writes s.b until the socket would block; it never asks the
// runtime to wait (it returns true).
func (s *streamSink) writeFD(fd uintptr) bool {
	for s.n < len(s.b) {
		m, err := syscall.Write(int(fd), s.b[s.n:])
		switch err {
		case nil:
			s.n += m
		case syscall.EINTR:
		case syscall.EAGAIN:
			return true
		default:
			s.werr = os.NewSyscallError("write", err)
			return true
		}
	}
	return true
}

func (s *streamSink) write(b []byte) error {
	if err := s.nc.SetWriteDeadline(time.Now().Add(s.timeout)); err != nil {
		return err
	}
	_, err := s.nc.Write(b)
	if err == nil && s.rc != nil {
		err = s.nc.SetWriteDeadline(time.Time{}) // else the next tryWrite is refused after the timeout
	}
	return err
}

func (s *streamSink) abort() { reset(s.nc) }

// reset closes nc so that the kernel drops what it still holds for the peer
// (a TCP reset) instead of keeping it for a peer that does not read. Under
// TLS (or a PROXY protocol wrapper) the socket beneath is reset and closed:
// a TLS close would first try to write a close_notify alert to that peer.
func reset(nc net.Conn) {
unwrap:
	for {
		switch w := nc.(type) {
		case interface{ NetConn() net.Conn }: // *tls.Conn and its wrappers
			nc = w.NetConn()
		case interface{ Raw() net.Conn }: // a PROXY protocol connection
			nc = w.Raw()
		default:
			break unwrap
		}
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = nc.Close()
}

// wsReader reads one frame per binary message, into a pooled buffer that
// goes back at the next call: an idle connection holds none.
type wsReader struct {
	batch *Batch          // flushed before a message is read, unless the socket has more
	rc    syscall.RawConn // the socket's, if it has one
	ws    *websocket.Conn
	max   int
	pb    *pooledBuf
	held  atomic.Int64
}

var errTextMessage = &Error{Code: CodeBadFrame, Message: "WebSocket text message; frames are binary messages"}

func (r *wsReader) ReadFrame() ([]byte, error) {
	putBuf(r.pb) // the previous frame is no longer in use
	r.pb = nil
	r.held.Store(0)
	if r.batch.pending() && (r.rc == nil || unread(r.rc) == 0) {
		// The next message may wait for the peer: flush first. With
		// bytes waiting in the socket it does not (a message the peer
		// has only begun to send is its own delay), and the frames of
		// what arrived together go out together.
		r.batch.flushLate()
	}
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

func (r *wsReader) buffered() bool { return false }

// retained returns the bytes of buffer c holds for its frames (not
// counting the WebSocket library's own buffers).
func (c *Conn) retained() (reader, writer int) {
	return c.reader.retained(), c.Writer.retained()
}
