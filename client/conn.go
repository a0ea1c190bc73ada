package client

import (
	"context"
	"errors"
	"math"
	"net/url"
	"sync"
	"time"

	"github.com/graftlb/graftlb/protocol"
	"github.com/rs/zerolog"
)

// ErrConnectionLost is returned for a call whose connection broke after the
// call was sent: it may or may not have run.
var ErrConnectionLost = errors.New("client: connection lost with the call in flight")

// ErrClosed is returned for calls on a closed Conn.
var ErrClosed = errors.New("client: connection closed")

// Conn is one client connection to a gateway or a proxy. It is safe for
// concurrent use.
type Conn struct {
	// Immutable after Dial.
	target  *url.URL
	opts    Options
	session *Session // the connection's session
	slots   chan struct{}
	done    chan struct{} // closed by Close
	cbCtx   context.Context
	cbStop  context.CancelFunc

	// wg counts the goroutines the Conn owns: the run loop, the pinger and
	// running callbacks. Close waits for them.
	wg sync.WaitGroup

	mu       sync.Mutex
	pc       *protocol.Conn // nil while disconnected
	welcome  protocol.Welcome
	pending  map[uint32]*call
	nextID   uint32
	sessions map[protocol.SessionID]*Session
	goaway   *protocol.Error
	goawayCh chan struct{}
	moving   bool           // a draining proxy asked to reconnect; the new connection is being dialed
	leaving  *protocol.Conn // the connection a draining proxy asked to leave
	closed   bool
	lastErr  error // why the transport last broke
}

type call struct {
	ch chan reply
	pc *protocol.Conn // the connection it was sent on
}

type reply struct {
	object uint64
	body   []byte
	err    error
}

// Dial connects to target (tcp://host:port, tls://host:port,
// ws://host:port/ws, wss://host:port/ws or host:port; tls and wss under
// Options.TLS), says HELLO and waits for WELCOME.
func Dial(ctx context.Context, target string, o Options) (*Conn, error) {
	u, err := ParseTarget(target)
	if err != nil {
		return nil, err
	}
	o = o.withDefaults()
	dctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	pc, err := dialTransport(dctx, u, o)
	if err != nil {
		return nil, protocol.Errorf(protocol.CodeUnavailable, "dial %s: %v", u, err)
	}
	sid, w, err := handshake(pc, o, o.Session, o.Resume)
	if err != nil {
		pc.Abort()
		return nil, err
	}
	c := &Conn{
		target:   u,
		opts:     o,
		done:     make(chan struct{}),
		pc:       pc,
		welcome:  w,
		pending:  make(map[uint32]*call),
		sessions: make(map[protocol.SessionID]*Session),
		goawayCh: make(chan struct{}),
	}
	c.cbCtx, c.cbStop = context.WithCancel(context.Background())
	n := int(w.MaxInflight)
	if n <= 0 || n > o.Limits.MaxInflight {
		n = o.Limits.MaxInflight
	}
	c.slots = make(chan struct{}, n)
	c.session = c.addSession(sid, false)
	c.wg.Add(1)
	go c.run(pc)
	if o.PingInterval > 0 {
		c.wg.Add(1)
		go c.pinger()
	}
	return c, nil
}

// Session returns the connection's session (the one HELLO named or the
// server chose).
func (c *Conn) Session() *Session { return c.session }

// Server returns the name the server gave in WELCOME.
func (c *Conn) Server() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.welcome.Server
}

// Welcome returns what the server announced in its last WELCOME.
func (c *Conn) Welcome() protocol.Welcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.welcome
}

// GoAway is closed when the server sends GOAWAY (it is draining).
func (c *Conn) GoAway() <-chan struct{} { return c.goawayCh }

// Connected reports whether the connection is up now.
func (c *Conn) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pc != nil
}

// Done is closed when Close has been called.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the transport last broke, or nil.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// Close closes the connection, fails the calls in flight with
// ErrConnectionLost, waits for the connection's goroutines (running
// callbacks and OnLost handlers) and closes the sessions' event streams.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.wg.Wait()
		return nil
	}
	c.closed = true
	pc := c.pc
	c.mu.Unlock()
	close(c.done)
	c.cbStop()
	if pc != nil {
		_ = pc.Close()
	}
	c.wg.Wait()
	c.mu.Lock()
	sessions := make([]*Session, 0, len(c.sessions))
	for _, s := range c.sessions {
		sessions = append(sessions, s)
	}
	c.mu.Unlock()
	for _, s := range sessions {
		s.closeStreams()
	}
	return nil
}

// run owns the transport: it reads frames until the connection breaks,
// then, with AutoReconnect, redials and resumes the connection's session.
func (c *Conn) run(pc *protocol.Conn) {
	defer c.wg.Done()
	backoff := 50 * time.Millisecond
	for {
		err := c.readLoop(pc)
		pc.Abort()
		c.logEnd(err)
		c.mu.Lock()
		moved := c.pc != pc // a draining proxy's connection, replaced by move
		if !moved {
			c.pc = nil
			c.lastErr = err
		}
		var lost []*call
		for id, cl := range c.pending {
			if cl.pc == pc {
				lost = append(lost, cl)
				delete(c.pending, id)
			}
		}
		closed := c.closed
		c.mu.Unlock()
		for _, cl := range lost {
			cl.ch <- reply{err: ErrConnectionLost}
		}
		if moved || closed || !c.opts.AutoReconnect {
			return
		}
		for {
			select {
			case <-c.done:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			npc, err := c.redial()
			if err != nil {
				c.opts.Logger.Debug().Err(err).Str("target", c.currentTarget().String()).Msg("reconnect failed")
				continue
			}
			pc = npc
			backoff = 50 * time.Millisecond
			c.wg.Add(1)
			go c.resubscribe()
			break
		}
	}
}

// logEnd logs why the transport broke, by the one classification gateway
// and proxy use too (protocol.ClassifyRead): quietly when it was closed,
// louder the less expected the end.
func (c *Conn) logEnd(err error) {
	end, _ := protocol.ClassifyRead(err)
	var ev *zerolog.Event
	switch end {
	case protocol.ReadEOF, protocol.ReadClosed:
		ev = c.opts.Logger.Debug()
	case protocol.ReadProtocolError:
		ev = c.opts.Logger.Warn()
	default:
		ev = c.opts.Logger.Info()
	}
	ev.Err(err).Stringer("end", end).Str("target", c.currentTarget().String()).Msg("connection ended")
}

func (c *Conn) redial() (*protocol.Conn, error) {
	ctx, cancel := context.WithTimeout(c.cbCtx, c.opts.DialTimeout)
	defer cancel()
	pc, err := dialTransport(ctx, c.currentTarget(), c.opts)
	if err != nil {
		return nil, err
	}
	_, w, err := handshake(pc, c.opts, c.session.id, true)
	if err != nil {
		pc.Abort()
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		pc.Abort()
		return nil, ErrClosed
	}
	c.pc, c.welcome = pc, w
	return pc, nil
}

func (c *Conn) readLoop(pc *protocol.Conn) error {
	var f protocol.Frame
	var connErr error // an ERROR for the whole connection, usually before its close
	for {
		b, err := pc.ReadFrame()
		if err != nil {
			if connErr != nil {
				return connErr
			}
			return err
		}
		if err := protocol.Decode(b, &f); err != nil {
			c.opts.Logger.Warn().Err(err).Msg("bad frame from server")
			return err
		}
		switch f.Type {
		case protocol.TypeResult, protocol.TypeError:
			if f.Type == protocol.TypeError && f.CallID == 0 {
				connErr = protocol.ErrorFromBody(f.Body)
				c.opts.Logger.Warn().Err(connErr).Msg("connection error from server")
				continue
			}
			c.deliver(&f)
		case protocol.TypeCallback:
			c.runCallback(pc, &f)
		case protocol.TypeEvent:
			c.dispatchEvent(&f)
		case protocol.TypePing:
			f.Type = protocol.TypePong
			_ = pc.Send(&f)
		case protocol.TypePong:
		case protocol.TypeMoved:
			c.movedNotice(pc, &f)
		case protocol.TypeGoaway:
			if f.Flags.Has(protocol.FlagReconnect) {
				c.startMove(pc)
				continue
			}
			perr := protocol.ErrorFromBody(f.Body)
			c.mu.Lock()
			if c.goaway == nil {
				c.goaway = perr
				close(c.goawayCh)
			}
			c.mu.Unlock()
		default:
			c.opts.Logger.Warn().Stringer("type", f.Type).Msg("unexpected frame from server")
		}
	}
}

func (c *Conn) deliver(f *protocol.Frame) {
	c.mu.Lock()
	cl, ok := c.pending[f.CallID]
	if ok {
		delete(c.pending, f.CallID)
	}
	c.mu.Unlock()
	if !ok {
		return // its caller gave up (deadline); drop the late reply
	}
	r := reply{object: f.Object}
	if f.Type == protocol.TypeError {
		r.err = protocol.ErrorFromBody(f.Body)
	} else {
		r.body = append([]byte(nil), f.Body...)
	}
	cl.ch <- r
}

func (c *Conn) pinger() {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			c.mu.Lock()
			pc := c.pc
			c.mu.Unlock()
			if pc != nil {
				_ = pc.Send(&protocol.Frame{Type: protocol.TypePing})
			}
		}
	}
}

// roundTrip sends f as a call and waits for its reply, honouring ctx's
// deadline both on the wire (the header's deadline) and here.
func (c *Conn) roundTrip(ctx context.Context, f *protocol.Frame) (reply, error) {
	if d, ok := ctx.Deadline(); ok {
		left := time.Until(d)
		if left <= 0 {
			return reply{}, protocol.Errorf(protocol.CodeDeadlineExceeded, "deadline passed before the call was sent")
		}
		ms := (left + time.Millisecond - 1) / time.Millisecond
		f.Deadline = uint32(min(int64(ms), math.MaxUint32))
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return reply{}, ctxErr(ctx)
	case <-c.done:
		return reply{}, ErrClosed
	}
	defer func() { <-c.slots }()

	for follows := 0; ; {
		r, pc, err := c.send(ctx, f)
		if target, ok := c.movedTo(err, f); ok && follows < 3 {
			follows++
			if err := c.follow(ctx, pc, target); err != nil {
				return reply{}, err
			}
			continue // the call did not run: send it to the new gateway
		}
		if err == nil || !c.refusedByDrain(err, pc) {
			return r, err
		}
		// A draining proxy refused the call unrun: resend it on the
		// connection the Conn moves to.
		if err := c.awaitMove(ctx, pc); err != nil {
			return reply{}, err
		}
	}
}

// send sends f once on the current connection and waits for its reply.
func (c *Conn) send(ctx context.Context, f *protocol.Frame) (reply, *protocol.Conn, error) {
	oneway := f.Flags.Has(protocol.FlagOneway)
	cl := &call{ch: make(chan reply, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return reply{}, nil, ErrClosed
	}
	pc := c.pc
	if pc == nil {
		err := c.lastErr
		c.mu.Unlock()
		return reply{}, nil, protocol.Errorf(protocol.CodeUnavailable, "not connected: %v", err)
	}
	if !oneway {
		f.CallID = c.allocIDLocked()
		cl.pc = pc
		c.pending[f.CallID] = cl
	}
	c.mu.Unlock()

	if err := pc.Send(f); err != nil {
		c.forget(f.CallID)
		if errors.Is(err, protocol.ErrBadFrame) {
			return reply{}, pc, err
		}
		return reply{}, pc, protocol.Errorf(protocol.CodeUnavailable, "send: %v", err)
	}
	if oneway {
		return reply{}, pc, nil
	}
	select {
	case r := <-cl.ch:
		return r, pc, r.err
	case <-ctx.Done():
		c.forget(f.CallID)
		return reply{}, pc, ctxErr(ctx)
	}
}

func (c *Conn) allocIDLocked() uint32 {
	for {
		c.nextID++
		if c.nextID == 0 {
			continue
		}
		if _, busy := c.pending[c.nextID]; !busy {
			return c.nextID
		}
	}
}

func (c *Conn) forget(id uint32) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

func ctxErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return protocol.Errorf(protocol.CodeDeadlineExceeded, "call deadline exceeded")
	}
	return ctx.Err()
}
