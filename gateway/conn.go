package gateway

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/rs/zerolog"

	"github.com/graftlb/graftlb/protocol"
)

// conn is one client (or proxy) connection. Its reader goroutine (serve)
// reads and admits frames and never runs module code; each call runs on a
// goroutine of its own; a watcher goroutine closes the connection when its
// writer gives up on a peer that does not read. Replies, events and
// callbacks from any goroutine go through the protocol.Conn's batching
// writer.
type conn struct {
	// Immutable after newConn.
	g       *Gateway
	id      uint64
	pc      *protocol.Conn
	raw     net.Conn        // the socket under pc, for a lingering close; may be nil
	ws      *websocket.Conn // set for the WebSocket binding
	binding string          // "tcp", "ws" or "conn" (ServeConn)
	log     zerolog.Logger
	ctx     context.Context // canceled when the connection ends: stops its calls and callbacks
	cancel  context.CancelFunc

	// Written by the reader goroutine while handling HELLO, before
	// welcomed is set and before any call starts; read-only afterwards.
	session  protocol.SessionID // the connection's own session
	proxy    bool               // the peer is a proxy carrying many sessions
	instance string             // the proxy's instance id from HELLO, or ""
	handoff  bool               // the peer is another gateway's handoff link
	peerMax  int                // the largest frame the peer accepts

	// Owned by the reader goroutine.
	ownNew bool // the own session is new (non-RESUME HELLO) and not yet created

	welcomed   atomic.Bool // HELLO answered
	goawaySent atomic.Bool
	ending     atomic.Bool // closing: the reason is logged; later errors are not

	mu           sync.Mutex // guards the fields below
	calls        map[uint32]*Call
	inflight     int // calls admitted and not answered, ONEWAY included
	callbacks    map[uint32]chan callbackReply
	nextCallback uint32
}

func newConn(g *Gateway, id uint64, pc *protocol.Conn, raw net.Conn, ws *websocket.Conn, binding string) *conn {
	c := &conn{g: g, id: id, pc: pc, raw: raw, ws: ws, binding: binding, calls: map[uint32]*Call{}}
	c.ctx, c.cancel = context.WithCancel(g.baseCtx)
	remote := ""
	if a := pc.RemoteAddr(); a != nil {
		remote = a.String()
	}
	c.log = g.log.With().Uint64("conn", id).Str("binding", binding).Str("remote", remote).Logger()
	return c
}

// ending says why a connection ends and how to log and close it.
type ending struct {
	level  zerolog.Level
	msg    string
	err    error
	linger bool // an ERROR was queued: flush it and let the peer read it
}

func (c *conn) serve() {
	c.log.Debug().Msg("connection opened")
	c.g.wg.Add(1) // we hold a slot, so this Add is safe
	go c.watchWriter()
	end := c.readLoop()
	if c.ending.CompareAndSwap(false, true) {
		ev := c.log.WithLevel(end.level)
		if end.err != nil {
			ev = ev.Err(end.err)
		}
		ev.Msg(end.msg)
	}
	c.cancel()
	if end.linger {
		c.lingerClose()
	} else {
		_ = c.pc.Close()
	}
	c.closeRaw()
}

// readLoop reads frames until the connection must end.
func (c *conn) readLoop() ending {
	lim := &c.g.cfg.Limits
	_ = c.pc.SetReadDeadline(time.Now().Add(lim.HelloTimeout))
	var f protocol.Frame
	for {
		b, err := c.pc.ReadFrame()
		if err != nil {
			if end, stop := c.readError(err); stop {
				return end
			}
			continue
		}
		if err := protocol.Decode(b, &f); err != nil {
			if end, stop := c.badFrame(b, &f, err); stop {
				return end
			}
			continue
		}
		var end ending
		var stop bool
		if c.welcomed.Load() {
			end, stop = c.handle(&f)
		} else {
			end, stop = c.hello(&f)
		}
		if stop {
			return end
		}
		_ = c.pc.SetReadDeadline(time.Now().Add(lim.IdleTimeout))
	}
}

// readError classifies a failed read (protocol.ClassifyRead); stop is
// false when the stream can go on (a WebSocket text message after HELLO).
func (c *conn) readError(err error) (end ending, stop bool) {
	kind, pe := protocol.ClassifyRead(err)
	switch werr := c.pc.Err(); {
	case c.ending.Load():
		return ending{level: zerolog.DebugLevel, msg: "connection closed"}, true
	case peerNotReading(werr):
		// The writer gave up on the peer and closed the socket under us.
		return writerEnding(werr), true
	case kind == protocol.ReadProtocolError && pe.Code == protocol.CodeTooLarge:
		c.sendError(0, protocol.SessionID{}, 0, pe)
		return ending{level: zerolog.WarnLevel, msg: "frame over the size limit", err: err, linger: true}, true
	case kind == protocol.ReadProtocolError:
		c.sendError(0, protocol.SessionID{}, 0, pe)
		if !c.welcomed.Load() {
			return ending{level: zerolog.WarnLevel, msg: "bad frame before HELLO", err: err, linger: true}, true
		}
		c.log.Warn().Err(err).Msg("bad frame")
		return ending{}, false
	case kind == protocol.ReadTimeout:
		if !c.welcomed.Load() {
			return ending{level: zerolog.WarnLevel, msg: "no HELLO within " + c.g.cfg.Limits.HelloTimeout.String()}, true
		}
		return ending{level: zerolog.InfoLevel, msg: "idle for " + c.g.cfg.Limits.IdleTimeout.String()}, true
	case kind == protocol.ReadEOF:
		return ending{level: zerolog.DebugLevel, msg: "peer closed the connection"}, true
	case kind == protocol.ReadCut && c.ws != nil:
		return ending{level: zerolog.InfoLevel, msg: "connection dropped without a WebSocket close", err: err}, true
	case kind == protocol.ReadCut:
		return ending{level: zerolog.WarnLevel, msg: "connection ended inside a frame", err: err}, true
	case kind == protocol.ReadClosed:
		return ending{level: zerolog.DebugLevel, msg: "connection closed"}, true
	}
	return ending{level: zerolog.InfoLevel, msg: "read failed", err: err}, true
}

// badFrame answers a frame that did not decode. The stream is still in
// sync (its size was known), so after HELLO the connection stays open,
// except for an unsupported version, which SPEC section 2 closes.
func (c *conn) badFrame(b []byte, f *protocol.Frame, err error) (ending, bool) {
	pe, ok := err.(*protocol.Error)
	if !ok {
		pe = protocol.Errorf(protocol.CodeBadFrame, "%v", err)
	}
	var callID uint32
	if len(b) >= protocol.HeaderSize {
		callID = f.CallID
	}
	switch {
	case pe.Code == protocol.CodeUnsupportedVersion:
		c.sendError(callID, protocol.SessionID{}, 0, pe)
		return ending{level: zerolog.WarnLevel, msg: "unsupported protocol version", err: pe, linger: true}, true
	case !c.welcomed.Load():
		c.sendError(0, protocol.SessionID{}, 0, pe)
		return ending{level: zerolog.WarnLevel, msg: "bad frame before HELLO", err: pe, linger: true}, true
	}
	c.sendError(callID, protocol.SessionID{}, 0, pe)
	c.log.Warn().Err(pe).Uint32("call", callID).Msg("bad frame")
	return ending{}, false
}

var errNotHello = &protocol.Error{Code: protocol.CodeBadFrame, Message: "the first frame must be HELLO"}

// hello handles the first frame of the connection.
func (c *conn) hello(f *protocol.Frame) (ending, bool) {
	if f.Type != protocol.TypeHello {
		c.sendError(0, protocol.SessionID{}, 0, errNotHello)
		return ending{level: zerolog.WarnLevel, msg: f.Type.String() + " before HELLO", linger: true}, true
	}
	var h protocol.Hello
	if len(f.Body) > 0 {
		if err := protocol.Unmarshal(f.Body, &h); err != nil {
			c.sendError(0, protocol.SessionID{}, 0, protocol.Errorf(protocol.CodeBadFrame, "HELLO body: %v", err))
			return ending{level: zerolog.WarnLevel, msg: "bad HELLO body", err: err, linger: true}, true
		}
	}
	resume := f.Flags.Has(protocol.FlagResume) && !f.Session.IsZero()
	c.session = f.Session
	if c.session.IsZero() {
		c.session = protocol.NewSessionID()
	}
	c.ownNew = !resume
	c.proxy = f.Flags.Has(protocol.FlagProxy)
	if c.proxy {
		c.instance = h.Instance
		c.handoff = h.Client == protocol.HandoffClient
	}
	if c.proxy {
		// A proxy carries many clients' sessions on this connection: when
		// it falls behind, calls and events wait for room (bounded by the
		// write timeout) instead of the connection being cut under all of
		// them. A direct client that stops reading is still cut off.
		c.pc.SetBlockWhenFull(true)
	}
	c.peerMax = protocol.DefaultMaxFrame
	if h.MaxFrame >= protocol.HeaderSize {
		c.peerMax = int(h.MaxFrame)
	}
	if resume {
		c.g.sessions.touch(c.session)
	}
	_ = c.pc.Send(&protocol.Frame{Type: protocol.TypeWelcome, Session: c.session, Body: c.g.welcomeBody})
	c.log.Debug().Str("session", c.session.String()).Bool("resume", resume).Bool("proxy", c.proxy).
		Str("instance", c.instance).Str("client", h.Client).Msg("HELLO")
	c.welcomed.Store(true)
	// Drain checks welcomed after setting its state; we check the state
	// after setting welcomed: one of us sends the GOAWAY.
	if c.g.draining() {
		c.sendGoaway()
	}
	return ending{}, false
}

// handle dispatches a frame after HELLO.
func (c *conn) handle(f *protocol.Frame) (ending, bool) {
	switch f.Type {
	case protocol.TypeCall:
		return c.admit(f)
	case protocol.TypeCallbackResult:
		c.deliverCallback(f.CallID, callbackReply{value: clone(f.Body)})
	case protocol.TypeError:
		if f.CallID == 0 {
			e := protocol.ErrorFromBody(f.Body)
			c.log.Info().Str("code", e.Code.String()).Str("message", e.Message).Msg("peer reported a connection error")
			break
		}
		c.deliverCallback(f.CallID, callbackReply{err: protocol.ErrorFromBody(f.Body)})
	case protocol.TypePing:
		sid := f.Session
		if sid.IsZero() {
			sid = c.session
		}
		c.g.sessions.touch(sid)
		_ = c.pc.Send(&protocol.Frame{Type: protocol.TypePong, CallID: f.CallID, Session: f.Session, Body: f.Body})
	case protocol.TypePong:
	case protocol.TypeHello:
		c.sendError(f.CallID, f.Session, 0, protocol.Errorf(protocol.CodeBadFrame, "HELLO already received"))
		c.log.Warn().Msg("second HELLO")
	default:
		c.sendError(f.CallID, f.Session, 0, protocol.Errorf(protocol.CodeBadFrame, "%s frames are not sent to a gateway", f.Type))
		c.log.Warn().Str("type", f.Type.String()).Msg("frame not sent to a gateway")
	}
	return ending{}, false
}

// sendError queues an ERROR frame. Failures mean the connection is closing.
func (c *conn) sendError(callID uint32, session protocol.SessionID, object uint64, e *protocol.Error) {
	var buf [128]byte
	body := protocol.AppendErrorBody(buf[:0], e.Code, e.Message, e.Type)
	_ = c.pc.Send(&protocol.Frame{Type: protocol.TypeError, CallID: callID, Session: session, Object: object, Body: body})
}

var goawayBody = protocol.AppendErrorBody(nil, protocol.CodeDraining, "gateway is draining: open new sessions elsewhere", "")

// sendGoaway sends GOAWAY once.
func (c *conn) sendGoaway() {
	if c.goawaySent.CompareAndSwap(false, true) {
		_ = c.pc.Send(&protocol.Frame{Type: protocol.TypeGoaway, Body: goawayBody})
	}
}

// watchWriter closes the connection when its writer stops on an error: a
// peer that does not read (queue full, or a write timed out). The protocol
// closes the socket then, so the reader usually gets there first (see
// readError); this covers a reader busy elsewhere. Owned by the
// connection; ends with it.
func (c *conn) watchWriter() {
	defer c.g.wg.Done()
	select {
	case <-c.pc.Done():
	case <-c.ctx.Done():
		return
	}
	err := c.pc.Err()
	if err == nil || !c.ending.CompareAndSwap(false, true) {
		return
	}
	end := writerEnding(err)
	c.log.WithLevel(end.level).Err(err).Msg(end.msg)
	c.abort()
}

// writerEnding is the ending of a connection whose writer stopped on err
// (the protocol closes the socket then).
func writerEnding(err error) ending {
	lvl := zerolog.InfoLevel
	if peerNotReading(err) {
		lvl = zerolog.WarnLevel
	}
	return ending{level: lvl, msg: "closing connection: peer not reading", err: err}
}

// peerNotReading reports whether the writer stopped on err because the
// peer did not take what was written: its queue overflowed or a write
// timed out.
func peerNotReading(err error) bool {
	var ne net.Error
	return errors.Is(err, protocol.ErrSlowPeer) || (errors.As(err, &ne) && ne.Timeout())
}

// abort closes the connection at once, dropping what is queued.
func (c *conn) abort() {
	c.ending.Store(true)
	c.cancel()
	c.pc.Abort()
	c.closeRaw()
}

// closeGracefully flushes what is queued (bounded by the write timeout),
// then closes: the end of a drain.
func (c *conn) closeGracefully() {
	if c.ending.CompareAndSwap(false, true) {
		c.log.Debug().Msg("closing connection: gateway stopping")
	}
	c.cancel()
	_ = c.pc.Close()
	c.closeRaw()
}

// closeRaw makes sure the socket is closed: a fasthttp hijacked connection
// is a wrapper whose Close may not reach the socket.
func (c *conn) closeRaw() {
	if u, ok := c.raw.(interface{ UnsafeConn() net.Conn }); ok {
		_ = u.UnsafeConn().Close()
	}
}

// lingerTime bounds a lingering close: after an ERROR that explains why
// the connection ends, the gateway stops writing and reads (and drops)
// what the peer still sends for that long, so that closing with unread
// input does not reset the connection before the peer has read the ERROR.
const lingerTime = 500 * time.Millisecond

// lingerClose closes the connection after a protocol error, without
// losing the ERROR queued last (protocol.Conn.LingerProtocolError).
func (c *conn) lingerClose() { c.pc.LingerProtocolError(lingerTime) }

func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}
