// Package gatewaytest speaks raw protocol frames to a gateway (or a proxy)
// over either binding, for tests that check the wire behaviour frame by
// frame. It depends only on protocol, so tests of any package may use it.
package gatewaytest

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/graftlb/graftlb/protocol"
)

// Bindings lists the protocol bindings, for tests that run over each.
var Bindings = []string{"tcp", "ws"}

// Timeout bounds every wait of a Peer.
const Timeout = 10 * time.Second

// Options configure Dial.
type Options struct {
	// NoReader leaves the connection unread (a peer that stops reading);
	// ReadAll reads it later.
	NoReader bool
	// OnCallback answers CALLBACK frames: it returns the value for
	// CALLBACK_RESULT, or an error for an ERROR reply. Without it,
	// callbacks are queued like events.
	OnCallback func(f *protocol.Frame) (any, *protocol.Error)
	// LocalIP, if set, is the source address to dial from (any of
	// 127.0.0.0/8 works on Linux): a second client host, for tests of
	// per-source limits.
	LocalIP string
}

// Peer is one client connection. Replies (RESULT, and ERROR with a call
// id) go to the Call that waits for them; every other frame is queued for
// Next.
type Peer struct {
	tb      testing.TB
	Binding string
	Conn    *protocol.Conn
	// Raw is the socket (for WebSocket, the one under WS): tests that
	// break the framing write to it directly.
	Raw net.Conn
	WS  *websocket.Conn

	opts   Options
	nextID atomic.Uint32
	others chan *protocol.Frame
	done   chan struct{} // closed when the reader stops

	mu      sync.Mutex // guards the fields below
	waiters map[uint32]chan *protocol.Frame
	readErr error
}

// Dial connects to addr (host:port) over binding ("tcp" or "ws", path
// /ws). The peer is closed when the test ends.
func Dial(tb testing.TB, binding, addr string, opts Options) *Peer {
	tb.Helper()
	nd := &net.Dialer{Timeout: Timeout}
	if opts.LocalIP != "" {
		nd.LocalAddr = &net.TCPAddr{IP: net.ParseIP(opts.LocalIP)}
	}
	switch binding {
	case "tcp":
		nc, err := nd.Dial("tcp", addr)
		if err != nil {
			tb.Fatalf("dial tcp %s: %v", addr, err)
		}
		return Over(tb, nc, nil, opts)
	case "ws":
		d := websocket.Dialer{HandshakeTimeout: Timeout, NetDial: nd.Dial}
		ws, _, err := d.Dial("ws://"+addr+protocol.WSPath, nil)
		if err != nil {
			tb.Fatalf("dial ws %s: %v", addr, err)
		}
		return Over(tb, nil, ws, opts)
	}
	tb.Fatalf("unknown binding %q", binding)
	return nil
}

// Over makes a peer of an established connection: ws if it is not nil
// (the WebSocket binding), else nc (the TCP binding). Tests that must
// write something before the protocol starts (a PROXY protocol header)
// dial themselves and hand the connection over.
func Over(tb testing.TB, nc net.Conn, ws *websocket.Conn, opts Options) *Peer {
	p := &Peer{tb: tb, Binding: "tcp", opts: opts, others: make(chan *protocol.Frame, 1<<16),
		done: make(chan struct{}), waiters: map[uint32]chan *protocol.Frame{}}
	if ws != nil {
		p.Binding, p.WS, p.Raw, p.Conn = "ws", ws, ws.NetConn(), protocol.NewWSConn(ws, protocol.ConnOptions{})
	} else {
		p.Raw, p.Conn = nc, protocol.NewStreamConn(nc, protocol.ConnOptions{})
	}
	if !opts.NoReader {
		go p.read()
	}
	tb.Cleanup(p.Close)
	return p
}

// Close closes the connection (with a WebSocket close handshake) and
// waits for the reader.
func (p *Peer) Close() {
	_ = p.Conn.Close()
	if !p.opts.NoReader {
		<-p.done
	}
}

// Abort closes the socket at once.
func (p *Peer) Abort() {
	p.Conn.Abort()
	if !p.opts.NoReader {
		<-p.done
	}
}

// LocalAddr is the peer's address as the server sees it.
func (p *Peer) LocalAddr() string { return p.Raw.LocalAddr().String() }

func (p *Peer) read() {
	defer close(p.done)
	for {
		b, err := p.Conn.ReadFrame()
		if err != nil {
			p.mu.Lock()
			p.readErr = err
			p.mu.Unlock()
			return
		}
		f := &protocol.Frame{}
		if err := protocol.Decode(clone(b), f); err != nil {
			p.tb.Errorf("peer received a frame that does not decode: %v", err)
			continue
		}
		if f.Type == protocol.TypeResult || (f.Type == protocol.TypeError && f.CallID != 0) {
			p.mu.Lock()
			ch := p.waiters[f.CallID]
			delete(p.waiters, f.CallID)
			p.mu.Unlock()
			if ch != nil {
				ch <- f
				continue
			}
		}
		if f.Type == protocol.TypeCallback && p.opts.OnCallback != nil {
			p.answerCallback(f)
			continue
		}
		p.others <- f
	}
}

func (p *Peer) answerCallback(f *protocol.Frame) {
	v, perr := p.opts.OnCallback(f)
	r := &protocol.Frame{Type: protocol.TypeCallbackResult, CallID: f.CallID, Session: f.Session}
	if perr != nil {
		r.Type = protocol.TypeError
		r.Body = protocol.AppendErrorBody(nil, perr.Code, perr.Message, perr.Type)
	} else {
		body, err := protocol.Marshal(v)
		if err != nil {
			p.tb.Errorf("encoding callback result: %v", err)
			return
		}
		r.Body = body
	}
	_ = p.Conn.Send(r)
}

// Send queues a frame.
func (p *Peer) Send(f *protocol.Frame) error { return p.Conn.Send(f) }

// Hello sends HELLO and returns the WELCOME.
func (p *Peer) Hello(flags protocol.Flags, session protocol.SessionID) (*protocol.Frame, protocol.Welcome) {
	p.tb.Helper()
	return p.HelloWith(flags, session, protocol.Hello{Client: "gatewaytest"})
}

// HelloWith sends HELLO with body h (a proxy's Instance, say) and returns
// the WELCOME.
func (p *Peer) HelloWith(flags protocol.Flags, session protocol.SessionID, h protocol.Hello) (*protocol.Frame, protocol.Welcome) {
	p.tb.Helper()
	body, _ := protocol.Marshal(h)
	if err := p.Send(&protocol.Frame{Type: protocol.TypeHello, Flags: flags, Session: session, Body: body}); err != nil {
		p.tb.Fatalf("send HELLO: %v", err)
	}
	f := p.Next()
	if f == nil || f.Type != protocol.TypeWelcome {
		p.tb.Fatalf("after HELLO got %v, want WELCOME", Describe(f))
	}
	var w protocol.Welcome
	if err := protocol.Unmarshal(f.Body, &w); err != nil {
		p.tb.Fatalf("WELCOME body: %v", err)
	}
	return f, w
}

// Call describes a CALL.
type Call struct {
	Target   string // module@version.Type.Method
	Args     []any  // encoded with protocol.MarshalArgs unless Body is set
	Body     []byte
	Flags    protocol.Flags
	Session  protocol.SessionID
	Object   uint64
	Deadline uint32 // ms
	CallID   uint32 // 0: the next id of the peer's counter
}

// Frame encodes c as a CALL frame (allocating a call id if it has none).
func (p *Peer) Frame(c Call) *protocol.Frame {
	p.tb.Helper()
	t, err := protocol.ParseTarget(c.Target)
	if err != nil {
		p.tb.Fatalf("target %q: %v", c.Target, err)
	}
	body := c.Body
	if body == nil {
		if body, err = protocol.MarshalArgs(c.Args...); err != nil {
			p.tb.Fatalf("args: %v", err)
		}
	}
	id := c.CallID
	if id == 0 {
		id = p.nextID.Add(1)
	}
	return &protocol.Frame{Type: protocol.TypeCall, Flags: c.Flags, CallID: id, Session: c.Session, Object: c.Object,
		Deadline: c.Deadline, Module: []byte(t.Module), TypeName: []byte(t.Type), Method: []byte(t.Method), Body: body}
}

// Start sends a CALL and returns a channel that gets its reply.
func (p *Peer) Start(c Call) (uint32, <-chan *protocol.Frame) {
	p.tb.Helper()
	f := p.Frame(c)
	ch := make(chan *protocol.Frame, 1)
	p.mu.Lock()
	p.waiters[f.CallID] = ch
	p.mu.Unlock()
	if err := p.Send(f); err != nil {
		p.tb.Errorf("send CALL: %v", err)
	}
	return f.CallID, ch
}

// Expect returns a channel that gets the reply with call id id, for a
// frame the test sends by other means (raw bytes).
func (p *Peer) Expect(id uint32) <-chan *protocol.Frame {
	ch := make(chan *protocol.Frame, 1)
	p.mu.Lock()
	p.waiters[id] = ch
	p.mu.Unlock()
	return ch
}

// Call sends a CALL and waits for its reply (nil if the connection closed
// or Timeout passed; the test is failed then).
func (p *Peer) Call(c Call) *protocol.Frame {
	p.tb.Helper()
	_, ch := p.Start(c)
	return p.Wait(ch)
}

// Wait waits for a reply channel from Start.
func (p *Peer) Wait(ch <-chan *protocol.Frame) *protocol.Frame {
	p.tb.Helper()
	select {
	case f := <-ch:
		return f
	case <-p.done:
		select {
		case f := <-ch:
			return f
		default:
		}
		p.tb.Errorf("connection closed while waiting for a reply: %v", p.ReadErr())
	case <-time.After(Timeout):
		p.tb.Errorf("no reply within %v", Timeout)
	}
	return nil
}

// Next returns the next frame that is not a reply to a Call: events,
// callbacks, GOAWAY, PONG, connection errors. It returns nil when the
// connection closed with nothing queued, or after Timeout.
func (p *Peer) Next() *protocol.Frame { return p.NextWithin(Timeout) }

// NextWithin is Next with its own timeout; it does not fail the test.
func (p *Peer) NextWithin(d time.Duration) *protocol.Frame {
	select {
	case f := <-p.others:
		return f
	default:
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case f := <-p.others:
		return f
	case <-p.done:
		select {
		case f := <-p.others:
			return f
		default:
			return nil
		}
	case <-t.C:
		return nil
	}
}

// WaitClosed waits until the server closes the connection and returns the
// read error that ended it; it fails the test after Timeout.
func (p *Peer) WaitClosed() error {
	p.tb.Helper()
	select {
	case <-p.done:
		return p.ReadErr()
	case <-time.After(Timeout):
		p.tb.Errorf("connection still open after %v", Timeout)
		return nil
	}
}

// ReadErr returns the error that stopped the reader, if it stopped.
func (p *Peer) ReadErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.readErr
}

// ReadAll reads (and drops) frames until the connection fails, for a
// NoReader peer; it returns the error and the number of frames read.
func (p *Peer) ReadAll(d time.Duration) (int, error) {
	_ = p.Conn.SetReadDeadline(time.Now().Add(d))
	n := 0
	for {
		if _, err := p.Conn.ReadFrame(); err != nil {
			return n, err
		}
		n++
	}
}

// ErrorOf returns the error an ERROR or GOAWAY frame carries, or nil.
func ErrorOf(f *protocol.Frame) *protocol.Error {
	if f == nil || (f.Type != protocol.TypeError && f.Type != protocol.TypeGoaway) {
		return nil
	}
	return protocol.ErrorFromBody(f.Body)
}

// Describe renders a frame for test messages.
func Describe(f *protocol.Frame) string {
	switch {
	case f == nil:
		return "nothing"
	case f.Type == protocol.TypeError || f.Type == protocol.TypeGoaway:
		return fmt.Sprintf("%s call %d: %v", f.Type, f.CallID, ErrorOf(f))
	}
	return fmt.Sprintf("%s call %d object %d (%d body bytes)", f.Type, f.CallID, f.Object, len(f.Body))
}

// Result decodes a RESULT's body into out, failing the test on an ERROR.
func Result(tb testing.TB, f *protocol.Frame, out any) {
	tb.Helper()
	if f == nil || f.Type != protocol.TypeResult {
		tb.Fatalf("got %s, want RESULT", Describe(f))
	}
	if out != nil {
		if err := protocol.Unmarshal(f.Body, out); err != nil {
			tb.Fatalf("RESULT body: %v", err)
		}
	}
}

// ExpectError fails the test unless f is an ERROR with code.
func ExpectError(tb testing.TB, f *protocol.Frame, code protocol.Code) *protocol.Error {
	tb.Helper()
	e := ErrorOf(f)
	if e == nil || f.Type != protocol.TypeError || e.Code != code {
		tb.Fatalf("got %s, want ERROR %s", Describe(f), code)
	}
	return e
}

// Encode returns the bytes of f (without a TCP length prefix).
func Encode(tb testing.TB, f *protocol.Frame) []byte {
	tb.Helper()
	b, err := protocol.AppendFrame(nil, f)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
