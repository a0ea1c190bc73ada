package balancer

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graftlb/graftlb/protocol"
)

// downstream is one client connection. Its reader goroutine (serve) routes
// every frame the client sends; replies, callbacks and events reach it from
// upstream readers through its batching writer, which never blocks them: a
// client that stops reading is cut off (protocol.ErrSlowPeer).
type downstream struct {
	// Immutable after the handshake.
	p    *Proxy
	pc   *protocol.Conn
	sess *session // the connection's session

	closed atomic.Bool
	// sessionsLive counts the sessions this connection brought to the
	// table that the table still holds.
	sessionsLive atomic.Int32

	// Owned by the reader goroutine.
	f        protocol.Frame
	scratch  []int
	deadline time.Time // read deadline currently set

	// mu guards the call ids in flight and the callback routes.
	mu     sync.Mutex
	ids    map[uint32]struct{}
	cbs    map[uint32]cbRoute
	nextCb uint32
}

// lingerTime bounds how long a closing client connection waits for the
// client to read the last frames (an ERROR) and close its side.
const lingerTime = 500 * time.Millisecond

// cbRoute says where the answer to a CALLBACK goes: the upstream it came
// from, under the gateway's call id.
type cbRoute struct {
	u  *upstream
	id uint32
}

func newDownstream(p *Proxy, pc *protocol.Conn) *downstream {
	return &downstream{p: p, pc: pc, ids: make(map[uint32]struct{}, 64), cbs: make(map[uint32]cbRoute)}
}

// serve runs the connection until it ends.
func (d *downstream) serve() {
	defer d.close()
	if !d.handshake() {
		return
	}
	lim := d.p.cfg.Limits
	for {
		if now := time.Now(); d.deadline.Sub(now) < lim.IdleTimeout-time.Second {
			d.deadline = now.Add(lim.IdleTimeout)
			_ = d.pc.SetReadDeadline(d.deadline)
		}
		raw, err := d.pc.ReadFrame()
		if err != nil {
			d.readFailed(err)
			return
		}
		if !d.handle(raw) {
			return
		}
	}
}

func (d *downstream) readFailed(err error) {
	var pe *protocol.Error
	switch {
	case errors.As(err, &pe):
		d.p.logBad(d, pe)
		d.sendError(0, pe.Code, pe.Message)
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	case isTimeout(err):
		d.p.cfg.Logger.Info().Str("client", d.pc.RemoteAddr().String()).Msg("closing idle client connection")
	default:
		d.p.cfg.Logger.Debug().Err(err).Str("client", d.pc.RemoteAddr().String()).Msg("client connection ended")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// handshake reads HELLO and answers WELCOME.
func (d *downstream) handshake() bool {
	lim := d.p.cfg.Limits
	_ = d.pc.SetReadDeadline(time.Now().Add(lim.HelloTimeout))
	raw, err := d.pc.ReadFrame()
	if err != nil {
		if isTimeout(err) {
			d.p.cfg.Logger.Info().Str("client", d.pc.RemoteAddr().String()).Msg("no HELLO in time; closing")
			return false
		}
		d.readFailed(err)
		return false
	}
	f := &d.f
	if err := protocol.Decode(raw, f); err != nil {
		var pe *protocol.Error
		errors.As(err, &pe)
		d.p.logBad(d, pe)
		d.sendError(0, pe.Code, pe.Message)
		return false
	}
	if f.Type != protocol.TypeHello {
		pe := protocol.Errorf(protocol.CodeBadFrame, "%s before HELLO", f.Type)
		d.p.logBad(d, pe)
		d.sendError(0, pe.Code, pe.Message)
		return false
	}
	id, fresh := f.Session, !f.Flags.Has(protocol.FlagResume)
	if id.IsZero() {
		id, fresh = protocol.NewSessionID(), true
	}
	d.sess = d.p.sessions.get(id, fresh, d.p.now())
	d.sess.client.Store(d)
	body, _ := protocol.Marshal(protocol.Welcome{
		Server:        d.p.cfg.Name,
		MaxFrame:      uint32(lim.MaxFrame),
		MaxInflight:   uint32(lim.MaxInflight),
		IdleTimeoutMs: uint32(lim.IdleTimeout / time.Millisecond),
	})
	return d.pc.Send(&protocol.Frame{Type: protocol.TypeWelcome, Session: id, Body: body}) == nil
}

// handle routes one client frame; false ends the connection.
func (d *downstream) handle(raw []byte) bool {
	f := &d.f
	if err := protocol.Decode(raw, f); err != nil {
		var pe *protocol.Error
		errors.As(err, &pe)
		d.p.logBad(d, pe)
		if pe.Code == protocol.CodeBadFrame && len(raw) >= protocol.HeaderSize && !f.Type.Known() {
			d.sendError(f.CallID, pe.Code, pe.Message) // unknown type: the stream is intact
			return true
		}
		d.sendError(0, pe.Code, pe.Message)
		return false
	}
	switch f.Type {
	case protocol.TypeCall:
		return d.call(f, raw)
	case protocol.TypeCallbackResult, protocol.TypeError:
		d.callbackReply(f.CallID, raw)
	case protocol.TypePing:
		d.keepalive(f.Session)
		f.Type = protocol.TypePong
		_ = d.pc.Send(f)
	case protocol.TypePong:
	default:
		pe := protocol.Errorf(protocol.CodeBadFrame, "a client may not send %s", f.Type)
		d.p.logBad(d, pe)
		d.sendError(f.CallID, pe.Code, pe.Message)
	}
	return true
}

// call routes a CALL.
func (d *downstream) call(f *protocol.Frame, raw []byte) bool {
	oneway := f.Flags.Has(protocol.FlagOneway)
	if !oneway {
		d.mu.Lock()
		_, dup := d.ids[f.CallID]
		full := len(d.ids) >= d.p.cfg.Limits.MaxInflight
		if !dup && !full {
			d.ids[f.CallID] = struct{}{}
		}
		d.mu.Unlock()
		if dup {
			pe := protocol.Errorf(protocol.CodeBadFrame, "call id %d reused while in flight", f.CallID)
			d.p.logBad(d, pe)
			d.sendError(0, pe.Code, pe.Message)
			return false
		}
		if full {
			d.sendError(f.CallID, protocol.CodeOverloaded, "too many calls in flight on this connection")
			return true
		}
		d.p.active.Add(1)
	}
	now := d.p.now() // read once: the forwarding path reads no other clock
	s := d.sess
	if !f.Session.IsZero() && f.Session != s.id {
		if s = d.p.sessions.lookup(f.Session); s == nil {
			// A session this proxy has not seen: each connection may bring
			// only so many, so that a client cannot fill the table.
			if int(d.sessionsLive.Load()) >= d.p.cfg.MaxSessionsPerConn {
				if !oneway {
					d.finish(f.CallID)
					d.sendError(f.CallID, protocol.CodeOverloaded, "too many sessions on this connection")
				}
				return true
			}
			s = d.p.sessions.getFor(f.Session, f.Flags.Has(protocol.FlagNewSession), now, d)
		}
		if s.client.Load() != d {
			s.client.Store(d)
		}
	} else {
		protocol.SetSession(raw, s.id)
	}
	s.lastUsed.Store(now)
	var deadline int64
	switch {
	case f.Deadline > 0:
		deadline = now + int64(f.Deadline)*int64(time.Millisecond)
	case d.p.cfg.CallTimeout > 0:
		deadline = now + int64(d.p.cfg.CallTimeout)
		protocol.SetDeadline(raw, uint32(d.p.cfg.CallTimeout/time.Millisecond))
	}
	pd := pending{down: d, clientID: f.CallID, deadline: deadline, flags: f.Flags, start: now}
	if f.Flags.Has(protocol.FlagStateless) {
		d.p.routeStateless(pd, f.Module, raw, nil)
	} else {
		pd.sess = s
		d.p.routeStateful(pd, f.Module, raw, &d.scratch)
	}
	return true
}

// keepalive passes a client's PING on to the gateway that holds the
// session it names (zero: the connection's), so that a session whose
// client is connected but quiet does not expire on its gateway (SPEC.md
// section 7: a PING with a session id keeps that session alive). One PING
// in, one PING out: no amplification.
func (d *downstream) keepalive(id protocol.SessionID) {
	s := d.sess
	if !id.IsZero() {
		if s = d.p.sessions.lookup(id); s == nil {
			return
		}
	}
	s.lastUsed.Store(d.p.now())
	s.mu.Lock()
	b, ok := s.owner, s.confirmed && !s.lost
	s.mu.Unlock()
	if !ok {
		return
	}
	if u := b.pickConn(); u != nil {
		_ = u.pc.Send(&protocol.Frame{Type: protocol.TypePing, Session: s.id})
	}
}

// finish forgets a call id once the call is answered.
func (d *downstream) finish(id uint32) {
	d.mu.Lock()
	delete(d.ids, id)
	d.mu.Unlock()
	d.p.active.Add(-1)
}

// deliver sends a gateway's reply to the client under the client's call id.
func (d *downstream) deliver(clientID uint32, raw []byte) {
	d.finish(clientID)
	protocol.SetCallID(raw, clientID)
	d.write(raw)
}

// write queues a frame for the client; a client that does not read is cut
// off so that it cannot stall the gateway connection the frame came from.
func (d *downstream) write(raw []byte) {
	if err := d.pc.WriteFrame(raw); err != nil && errors.Is(err, protocol.ErrSlowPeer) {
		d.p.cfg.Logger.Warn().Str("client", d.pc.RemoteAddr().String()).Msg("client is not reading; closing its connection")
		d.pc.Abort()
	}
}

// sendError answers call id (0: the connection) with an ERROR frame.
func (d *downstream) sendError(id uint32, code protocol.Code, msg string) {
	_ = d.pc.Send(&protocol.Frame{Type: protocol.TypeError, CallID: id,
		Body: protocol.AppendErrorBody(nil, code, msg, "")})
}

// failCall answers a forwarded call with a proxy-made error.
func (d *downstream) failCall(id uint32, code protocol.Code, msg string) {
	d.finish(id)
	d.sendError(id, code, msg)
}

// forwardCallback sends a gateway's CALLBACK to the client under a call id
// of this connection, remembering where the answer goes.
func (d *downstream) forwardCallback(u *upstream, gwID uint32, raw []byte) bool {
	d.mu.Lock()
	if d.closed.Load() {
		d.mu.Unlock()
		return false
	}
	id := freeID(d.cbs, d.nextCb)
	d.nextCb = id
	d.cbs[id] = cbRoute{u: u, id: gwID}
	d.mu.Unlock()
	protocol.SetCallID(raw, id)
	d.write(raw)
	return true
}

// callbackReply sends the client's answer to a CALLBACK back to the gateway.
func (d *downstream) callbackReply(id uint32, raw []byte) {
	d.mu.Lock()
	r, ok := d.cbs[id]
	delete(d.cbs, id)
	d.mu.Unlock()
	if !ok {
		d.p.cfg.Logger.Debug().Uint32("id", id).Msg("answer to an unknown callback dropped")
		return
	}
	protocol.SetCallID(raw, r.id)
	_ = r.u.pc.WriteFrame(raw)
}

// close ends the connection. Callbacks waiting for this client are answered
// with UNAVAILABLE so the gateway's call does not hang.
func (d *downstream) close() {
	d.closed.Store(true)
	d.pc.Linger(lingerTime)
	d.mu.Lock()
	cbs := d.cbs
	d.cbs = make(map[uint32]cbRoute)
	d.mu.Unlock()
	for _, r := range cbs {
		_ = r.u.pc.Send(&protocol.Frame{Type: protocol.TypeError, CallID: r.id,
			Body: protocol.AppendErrorBody(nil, protocol.CodeUnavailable, "client connection closed", "")})
	}
	d.p.conns.Add(-1)
	d.p.sources.release(d.pc.RemoteAddr())
	d.p.dropConn(d)
}
