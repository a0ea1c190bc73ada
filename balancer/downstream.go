package balancer

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graftlb/graftlb/credential"
	"github.com/graftlb/graftlb/internal/listener"
	"github.com/graftlb/graftlb/protocol"
)

// downstream is one client connection. Its reader goroutine (serve) routes
// every frame the client sends; replies, callbacks and events reach it from
// upstream readers through its batching writer, which never blocks them: a
// client that stops reading is cut off (protocol.ErrSlowPeer).
type downstream struct {
	// Immutable after the handshake.
	p       *Proxy
	pc      *protocol.Conn
	lim     protocol.Limits // the connection's, from the config in force when it came
	sess    *session        // the connection's session
	ref     *clientRef      // what sessions point at: this connection, weakly
	src     *sourceQuota
	peerMax int   // the largest frame the client accepts (its HELLO's max_frame)
	shard   uint8 // its calls' shard of every upstream's call table
	// With credentials (auth.go): the identity its HELLO proved, what its
	// session ids are translated with, and its identity's rate limit word.
	// Without: bind and idRate are nil.
	ident  credential.Identity
	bind   *sessionBinding
	idRate *identityRate
	tat    *atomic.Int64 // the rate limit word its calls count against: its source's or its identity's

	closed   atomic.Bool
	goawayAt atomic.Int64 // unix nanoseconds of the drain's GOAWAY; 0: none
	// badInput is set (by the reader) when a protocol error ends the
	// connection: a WebSocket client then gets close code 1002.
	badInput bool
	// sessionsLive counts the sessions this connection brought to the
	// table that the table still holds. It is an allocation of its own,
	// since sessions point at it: a pointer into the downstream would keep
	// all of it alive.
	sessionsLive *atomic.Int32

	// Owned by the reader goroutine.
	out      protocol.Batch // what it queues calls on: flushed before it waits (FlushBeforeRead)
	f        protocol.Frame
	scratch  pickScratch
	deadline time.Time // read deadline currently set

	// mu guards the calls in flight, the callback routes and the sessions
	// this connection brought. The maps are made on first use: an idle
	// connection that made no call holds none.
	mu      sync.Mutex
	ids     map[uint32]struct{} // client call ids of calls in flight
	oneways int                 // ONEWAY calls in flight (their ids need not be unique)
	cbs     map[uint32]cbRoute
	nextCb  uint32
	brought []*session
	subs    map[topicKey]protocol.SessionID // topic subscriptions, to the id the client names the session by (topic.go)
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

func newDownstream(p *Proxy, pc *protocol.Conn, lim protocol.Limits) *downstream {
	d := &downstream{p: p, pc: pc, lim: lim, sessionsLive: new(atomic.Int32), shard: nextShard()}
	d.ref = newClientRef(d)
	pc.FlushBeforeRead(&d.out)
	d.src = p.sessions.openSource(sourceKey(pc.RemoteAddr()))
	d.tat = &d.src.tat
	return d
}

// sourceKey is the source a connection's session quota is counted by:
// the same as its connection limit's (listener.SourceOf), or its address as a
// string when it has no IP (a pipe).
func sourceKey(a net.Addr) string {
	if src, ok := listener.SourceOf(a); ok {
		return src.String()
	}
	return a.String()
}

// serve runs the connection until it ends.
func (d *downstream) serve() {
	defer d.close()
	defer d.out.Flush()
	if !d.handshake() {
		return
	}
	lim := d.lim
	for {
		if !d.pc.Buffered() { // the next read may wait: the idle timeout starts
			if now := time.Now(); d.deadline.Sub(now) < lim.IdleTimeout-time.Second {
				d.deadline = now.Add(lim.IdleTimeout)
				_ = d.pc.SetReadDeadline(d.deadline)
			}
		}
		raw, err := d.pc.ReadFrame()
		if err != nil {
			if d.recoverable(err) {
				continue
			}
			d.readFailed(err)
			return
		}
		if !d.handle(raw) {
			return
		}
	}
}

// recoverable answers a read error after which the stream goes on: a
// WebSocket text message, whose message boundaries are intact (SPEC.md
// section 6), as on a gateway.
func (d *downstream) recoverable(err error) bool {
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code == protocol.CodeTooLarge {
		return false
	}
	d.p.logBad(d, pe)
	d.sendError(0, pe.Code, pe.Message)
	return true
}

func (d *downstream) readFailed(err error) {
	switch end, pe := protocol.ClassifyRead(err); end {
	case protocol.ReadProtocolError:
		d.p.logBad(d, pe)
		d.badInput = true
		d.sendError(0, pe.Code, pe.Message)
	case protocol.ReadEOF, protocol.ReadClosed:
	case protocol.ReadTimeout:
		d.p.cfg.Logger.Info().Str("client", d.pc.RemoteAddr().String()).Msg("closing idle client connection")
	default:
		d.p.cfg.Logger.Debug().Err(err).Stringer("end", end).Str("client", d.pc.RemoteAddr().String()).Msg("client connection ended")
	}
}

// handshake reads HELLO and answers WELCOME.
func (d *downstream) handshake() bool {
	lim := d.lim
	_ = d.pc.SetReadDeadline(time.Now().Add(lim.HelloTimeout))
	raw, err := d.pc.ReadFrame()
	if err != nil {
		if end, _ := protocol.ClassifyRead(err); end == protocol.ReadTimeout {
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
		d.badInput = true
		d.sendError(0, pe.Code, pe.Message)
		return false
	}
	if f.Type != protocol.TypeHello {
		pe := protocol.Errorf(protocol.CodeBadFrame, "%s before HELLO", f.Type)
		d.p.logBad(d, pe)
		d.badInput = true
		d.sendError(0, pe.Code, pe.Message)
		return false
	}
	d.peerMax = protocol.DefaultMaxFrame
	var h protocol.Hello
	if protocol.Unmarshal(f.Body, &h) == nil && h.MaxFrame >= protocol.HeaderSize {
		d.peerMax = int(h.MaxFrame)
	}
	if d.p.verifier != nil {
		ident, ok := d.authenticate(&h)
		if !ok {
			return false
		}
		d.ident, d.bind = ident, newSessionBinding(ident)
		d.idRate = d.p.idRates.open(ident)
		d.tat = &d.idRate.tat
	}
	id, fresh := f.Session, !f.Flags.Has(protocol.FlagResume)
	if id.IsZero() {
		id, fresh = protocol.NewSessionID(), true
	}
	gid := id // the gateway-side id
	if d.bind != nil {
		d.bind.ownX = id
		gid = d.bind.derive(id)
	}
	d.sess = d.p.sessions.own(gid, id, fresh, d.p.now(), d)
	d.sess.client.Store(d.ref)
	body, _ := protocol.Marshal(protocol.Welcome{
		Server:        d.p.cfg.Name,
		MaxFrame:      uint32(lim.MaxFrame),
		MaxInflight:   uint32(lim.MaxInflight),
		IdleTimeoutMs: uint32(lim.IdleTimeout / time.Millisecond),
		SessionTTLMs:  uint32(d.p.picker.Load().sessionTTL / time.Millisecond),
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
		// The frame's size was known, so the stream is still in sync: it
		// is answered (under its call id when its header was whole) and
		// the connection goes on, except for an unsupported version,
		// which ends it (SPEC.md section 6), as on a gateway.
		var id uint32
		if len(raw) >= protocol.HeaderSize {
			id = f.CallID
		}
		d.sendError(id, pe.Code, pe.Message)
		if pe.Code == protocol.CodeUnsupportedVersion {
			d.badInput = true
			return false
		}
		return true
	}
	cx := f.Session // as the client named it
	if d.bind != nil && !cx.IsZero() {
		f.Session = d.bind.toGateway(cx, d.sess) // bound to the identity (auth.go)
		protocol.SetSession(raw, f.Session)
	}
	switch f.Type {
	case protocol.TypeCall:
		if len(f.Module) > 0 && f.Module[0] == '$' {
			d.reservedCall(f, cx) // the protocol's own: never forwarded
			return true
		}
		return d.call(f, raw, cx)
	case protocol.TypeCallbackResult, protocol.TypeError:
		d.callbackReply(f.CallID, raw)
	case protocol.TypePing:
		d.keepalive(f.Session)
		f.Type, f.Session = protocol.TypePong, cx
		_ = d.pc.Send(f)
	case protocol.TypePong:
	default:
		pe := protocol.Errorf(protocol.CodeBadFrame, "a client may not send %s", f.Type)
		d.p.logBad(d, pe)
		d.sendError(f.CallID, pe.Code, pe.Message)
	}
	return true
}

// call routes a CALL. Every call, ONEWAY included, takes a slot of the
// connection's MaxInflight until it is settled (for ONEWAY: until its
// gateway says it ran; SPEC.md section 3), and the proxy never answers a
// ONEWAY call, not even with an error. cx is the session id as the client
// sent it, f's and raw's the one forwarded.
func (d *downstream) call(f *protocol.Frame, raw []byte, cx protocol.SessionID) bool {
	oneway := f.Flags.Has(protocol.FlagOneway)
	d.mu.Lock()
	_, dup := d.ids[f.CallID]
	dup = dup && !oneway
	full := len(d.ids)+d.oneways >= d.lim.MaxInflight
	switch {
	case dup, full:
	case oneway:
		d.oneways++
	default:
		if d.ids == nil {
			d.ids = make(map[uint32]struct{}, 64)
		}
		d.ids[f.CallID] = struct{}{}
	}
	d.mu.Unlock()
	if dup {
		pe := protocol.Errorf(protocol.CodeBadFrame, "call id %d reused while in flight", f.CallID)
		d.p.logBad(d, pe)
		d.badInput = true
		d.sendError(0, pe.Code, pe.Message)
		return false
	}
	if full {
		if !oneway {
			d.sendError(f.CallID, protocol.CodeOverloaded, "too many calls in flight on this connection")
		}
		return true
	}
	d.p.active.Add(1)
	now := d.p.now() // Config.Clock, read once: the call's deadline, latency sample and session use
	c := call{down: d, clientID: f.CallID, flags: f.Flags, start: now, out: &d.out}
	if g := d.goawayAt.Load(); g != 0 && time.Now().UnixNano()-g > int64(moveWindow) {
		c.failUnrouted(f.Module, protocol.CodeDraining, "the proxy is draining: send the call on a new connection")
		return true
	}
	if !d.p.rate.Load().allow(d.tat, now) {
		msg := "rate limit: this source sends more calls per second than the proxy's call_rate"
		if d.bind != nil {
			msg = "rate limit: this identity sends more calls per second than the proxy's call_rate"
		}
		c.failUnrouted(f.Module, protocol.CodeOverloaded, msg)
		return true
	}
	if l := d.p.modLimit; l.on() {
		if c.mod = l.acquire(f.Module); c.mod == nil {
			d.p.stats.moduleCallsRefused.Add(1)
			c.failUnrouted(f.Module, protocol.CodeOverloaded, l.refusal(f.Module))
			return true
		}
	}
	if d.p.conf().TraceIDs && len(f.Trace) == 0 {
		raw = addTrace(f, raw) // allocates: only with --trace-ids
	}
	if d.p.cfg.AccessLog != nil {
		d.p.startAccess(&c, f) // allocates when the call is logged
	}
	s := d.sess
	if !f.Session.IsZero() && f.Session != s.id {
		if s = d.p.sessions.lookup(f.Session); s == nil {
			var why tableRefusal
			if s, why = d.p.sessions.getFor(f.Session, cx, f.Flags.Has(protocol.FlagNewSession), now, d, true); s == nil {
				c.failUnrouted(f.Module, protocol.CodeOverloaded, why.String())
				return true
			}
			d.bring(s)
		}
		if s.client.Load() != d.ref {
			s.client.Store(d.ref)
		}
	} else {
		protocol.SetSession(raw, s.id)
	}
	s.lastUsed.Store(now)
	if d.bind != nil {
		c.cid = s.cid
	}
	switch ct := d.p.conf().CallTimeout; {
	case f.Deadline > 0:
		c.deadline = now + int64(f.Deadline)*int64(time.Millisecond)
	case ct > 0:
		c.deadline = now + int64(ct)
		protocol.SetDeadline(raw, uint32(ct/time.Millisecond))
	}
	// Transport hook (issue 15): a route may send the call over another
	// transport, the way a picker sends it to a gateway.
	if d.p.viaTransport(&c, f, raw) {
		return true
	}
	if f.Flags.Has(protocol.FlagStateless) {
		d.p.routeStateless(c, f.Module, raw, nil)
	} else {
		c.sess = s
		d.p.routeStateful(c, f.Module, raw, &d.scratch)
	}
	return true
}

// bring remembers a session this connection added to the table, so that
// close can forget it if it never held an object. Sessions the table forgot
// meanwhile are dropped from the list as it grows.
func (d *downstream) bring(s *session) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.brought) >= 2*int(d.sessionsLive.Load())+64 {
		kept := d.brought[:0]
		for _, b := range d.brought {
			if !b.gone.Load() {
				kept = append(kept, b)
			}
		}
		clear(d.brought[len(kept):])
		d.brought = kept
	}
	d.brought = append(d.brought, s)
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
	b := s.held.Load()
	if b == nil {
		return
	}
	if u := b.pickConn(); u != nil {
		_ = u.pc.Send(&protocol.Frame{Type: protocol.TypePing, Session: s.id})
	}
}

// finish frees the slot of a settled call: its call id (or its ONEWAY
// count) and its share of the proxy's active calls.
func (d *downstream) finish(c *call) {
	d.mu.Lock()
	if c.flags.Has(protocol.FlagOneway) {
		d.oneways--
	} else {
		delete(d.ids, c.clientID)
	}
	d.mu.Unlock()
	d.p.active.Add(-1)
}

// deliver sends a gateway's reply to settled call c to the client under
// the client's call id; the gateway's acknowledgement of a ONEWAY call goes
// no further. A reply larger than the client's max_frame becomes ERROR
// TOO_LARGE for that call, as a gateway answers (SPEC.md section 6).
func (d *downstream) deliver(c *call, raw []byte) {
	if c.flags.Has(protocol.FlagOneway) {
		return
	}
	if len(raw) > d.peerMax {
		d.sendError(c.clientID, protocol.CodeTooLarge, "the reply exceeds the max_frame this client announced")
		return
	}
	protocol.SetCallID(raw, c.clientID)
	if d.bind != nil {
		protocol.SetSession(raw, c.cid) // the client's id (auth.go)
	}
	d.write(c.out, raw)
}

// write queues a frame for the client on out (nil: written at once); a
// client that does not read is cut off so that it cannot stall the gateway
// connection the frame came from.
func (d *downstream) write(out *protocol.Batch, raw []byte) {
	if err := out.Queue(d.pc.Writer, raw); err != nil && errors.Is(err, protocol.ErrSlowPeer) {
		d.p.cfg.Logger.Warn().Str("client", d.pc.RemoteAddr().String()).Msg("client is not reading; closing its connection")
		d.pc.Abort()
	}
}

// sendError answers call id (0: the connection) with an ERROR frame.
func (d *downstream) sendError(id uint32, code protocol.Code, msg string) {
	_ = d.pc.Send(&protocol.Frame{Type: protocol.TypeError, CallID: id,
		Body: protocol.AppendErrorBody(nil, code, msg, "")})
}

// forwardCallback sends a gateway's CALLBACK to the client under a call id
// of this connection, remembering where the answer goes.
func (d *downstream) forwardCallback(u *upstream, gwID uint32, raw []byte) bool {
	if len(raw) > d.peerMax {
		_ = u.pc.Send(&protocol.Frame{Type: protocol.TypeError, CallID: gwID,
			Body: protocol.AppendErrorBody(nil, protocol.CodeTooLarge, "the callback exceeds the client's max_frame", "")})
		return true
	}
	d.mu.Lock()
	if d.closed.Load() {
		d.mu.Unlock()
		return false
	}
	if d.cbs == nil {
		d.cbs = make(map[uint32]cbRoute)
	}
	id := freeID(d.cbs, d.nextCb)
	d.nextCb = id
	d.cbs[id] = cbRoute{u: u, id: gwID}
	d.mu.Unlock()
	protocol.SetCallID(raw, id)
	d.write(nil, raw)
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
// with UNAVAILABLE so the gateway's call does not hang. The sessions it
// brought that never held an object are forgotten with it; the others stay
// in the table (a client may resume them elsewhere) without a reference to
// this connection.
func (d *downstream) close() {
	d.closed.Store(true)
	d.unsubscribe(protocol.SessionID{})
	if d.badInput {
		d.pc.LingerProtocolError(lingerTime)
	} else {
		d.pc.Linger(lingerTime)
	}
	d.mu.Lock()
	cbs := d.cbs
	d.cbs = nil
	brought := d.brought
	d.brought = nil
	d.mu.Unlock()
	for _, r := range cbs {
		_ = r.u.pc.Send(&protocol.Frame{Type: protocol.TypeError, CallID: r.id,
			Body: protocol.AppendErrorBody(nil, protocol.CodeUnavailable, "client connection closed", "")})
	}
	for _, s := range append(brought, d.sess) {
		if s == nil || !s.client.CompareAndSwap(d.ref, nil) {
			continue // another connection uses it now
		}
		d.p.sessions.forgetIfEmpty(s)
	}
	d.p.sessions.closeSource(d.src)
	if d.idRate != nil {
		d.p.idRates.close(d.ident, d.idRate)
	}
	d.p.admission.Release(d.pc.RemoteAddr())
	d.p.dropConn(d)
}
