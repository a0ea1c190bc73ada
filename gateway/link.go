package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/graftlb/graftlb/internal/tlsfiles"
	"github.com/graftlb/graftlb/protocol"
)

// A link is this gateway's connection to another gateway of the pool, as
// a proxy (HELLO with PROXY, client protocol.HandoffClient): it carries the
// Adopt calls of a drain and the calls relayed for sessions that moved.
// One per target, dialed on first use, reused; its reader goroutine is
// owned by the gateway and ends when the link breaks or the gateway stops.
type link struct {
	g        *Gateway
	name     string
	addr     string
	pc       *protocol.Conn
	maxFrame int // the peer's, from WELCOME

	mu      sync.Mutex // guards the fields below
	nextID  uint32
	waiters map[uint32]chan protocol.Frame
	err     error // why the link broke; nil while it works
	// relayed maps the sessions of relayed calls to the connection the
	// latest call came in on, for the events the peer sends back.
	relayed map[protocol.SessionID]*conn
}

// linkDialTimeout bounds dialing a peer and its WELCOME.
const linkDialTimeout = 2 * time.Second

var errLinkClosed = &protocol.Error{Code: protocol.CodeUnavailable, Message: "connection to the gateway that holds the session broke"}

// link returns a working link to t, dialing one if needed. Dials to one
// target are serialized.
func (g *Gateway) link(ctx context.Context, t *PeerInfo) (*link, error) {
	g.linkMu.Lock()
	slot := g.links[t.Name]
	if slot == nil {
		slot = &linkSlot{}
		g.links[t.Name] = slot
	}
	g.linkMu.Unlock()
	slot.mu.Lock()
	defer slot.mu.Unlock()
	if l := slot.l; l != nil && l.addr == t.TCP && l.alive() {
		return l, nil
	}
	l, err := g.dialLink(ctx, t)
	if err != nil {
		return nil, err
	}
	slot.l = l
	return l, nil
}

// linkSlot holds the link to one target.
type linkSlot struct {
	mu sync.Mutex
	l  *link
}

func (g *Gateway) dialLink(ctx context.Context, t *PeerInfo) (*link, error) {
	d := net.Dialer{Timeout: linkDialTimeout}
	nc, err := d.DialContext(ctx, "tcp", t.TCP)
	if err != nil {
		return nil, fmt.Errorf("dial gateway %s at %s: %w", t.Name, t.TCP, err)
	}
	if t.TLS {
		host, _, _ := net.SplitHostPort(t.TCP)
		tc := tls.Client(nc, g.peerTLS(host))
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = nc.Close()
			return nil, fmt.Errorf("TLS handshake with gateway %s at %s: %w", t.Name, t.TCP, err)
		}
		nc = tc
	}
	pc := protocol.NewStreamConn(nc, g.connOpts)
	pc.SetBlockWhenFull(true)
	hello, _ := protocol.Marshal(protocol.Hello{Client: protocol.HandoffClient, MaxFrame: uint32(g.cfg.Limits.MaxFrame),
		Instance: "handoff-" + g.cfg.Name})
	_ = pc.SetReadDeadline(time.Now().Add(linkDialTimeout))
	var w protocol.Welcome
	err = pc.Send(&protocol.Frame{Type: protocol.TypeHello, Flags: protocol.FlagProxy, Body: hello})
	if err == nil {
		err = readWelcome(pc, &w)
	}
	if err != nil {
		pc.Abort()
		return nil, fmt.Errorf("HELLO to gateway %s at %s: %w", t.Name, t.TCP, err)
	}
	_ = pc.SetReadDeadline(time.Time{})
	l := &link{g: g, name: t.Name, addr: t.TCP, pc: pc, maxFrame: protocol.DefaultMaxFrame,
		waiters: map[uint32]chan protocol.Frame{}, relayed: map[protocol.SessionID]*conn{}}
	if w.MaxFrame >= protocol.HeaderSize {
		l.maxFrame = int(w.MaxFrame)
	}
	if !g.acquire() {
		pc.Abort()
		return nil, ErrClosed
	}
	go l.read()
	return l, nil
}

// peerTLS is the client configuration of a TLS link to a peer at host:
// Config.PeerTLS, presenting this gateway's own listener certificate (as
// it is reloaded) when the gateway has one and PeerTLS sets no client
// certificate of its own.
func (g *Gateway) peerTLS(host string) *tls.Config {
	conf := tlsfiles.ForHost(g.cfg.PeerTLS, host)
	if g.tls != nil && len(conf.Certificates) == 0 && conf.GetClientCertificate == nil {
		conf.GetClientCertificate = g.tls.GetClientCertificate
	}
	return conf
}

func readWelcome(pc *protocol.Conn, w *protocol.Welcome) error {
	b, err := pc.ReadFrame()
	if err != nil {
		return err
	}
	var f protocol.Frame
	if err := protocol.Decode(b, &f); err != nil {
		return err
	}
	switch f.Type {
	case protocol.TypeWelcome:
		return protocol.Unmarshal(f.Body, w)
	case protocol.TypeError:
		return protocol.ErrorFromBody(f.Body)
	}
	return fmt.Errorf("got %s, want WELCOME", f.Type)
}

func (l *link) alive() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err == nil
}

// read delivers the peer's replies until the link breaks. Owned by the
// gateway (a wg slot).
func (l *link) read() {
	defer l.g.wg.Done()
	var f protocol.Frame
	var err error
	for err == nil {
		var b []byte
		if b, err = l.pc.ReadFrame(); err != nil {
			break
		}
		if err = protocol.Decode(b, &f); err != nil {
			break
		}
		switch f.Type {
		case protocol.TypeResult, protocol.TypeError:
			if f.CallID == 0 {
				l.g.log.Info().Str("peer", l.name).Err(protocol.ErrorFromBody(f.Body)).Msg("handoff link: peer reported an error")
				continue
			}
			l.deliver(f)
		case protocol.TypeEvent:
			l.forwardEvent(&f)
		case protocol.TypeCallback:
			// Callbacks of relayed calls are not carried back (SPEC.md
			// section 7, Handoff): the call fails at the peer.
			_ = l.pc.Send(&protocol.Frame{Type: protocol.TypeError, CallID: f.CallID, Session: f.Session,
				Body: protocol.AppendErrorBody(nil, protocol.CodeUnavailable, "callbacks are not relayed after a handoff", "")})
		case protocol.TypePing:
			f.Type = protocol.TypePong
			_ = l.pc.Send(&f)
		}
	}
	l.fail(err)
}

// deliver hands a reply to the call waiting for it; f's views are copied.
func (l *link) deliver(f protocol.Frame) {
	l.mu.Lock()
	ch := l.waiters[f.CallID]
	delete(l.waiters, f.CallID)
	l.mu.Unlock()
	if ch == nil {
		return // its caller gave up
	}
	f.Body = clone(f.Body)
	f.Module, f.TypeName, f.Method, f.Trace = nil, nil, nil, nil
	ch <- f // buffered; each id is delivered once
}

// forwardEvent passes an event of a relayed session to the connection its
// latest relayed call came in on.
func (l *link) forwardEvent(f *protocol.Frame) {
	l.mu.Lock()
	c := l.relayed[f.Session]
	l.mu.Unlock()
	if c != nil && !c.ending.Load() && f.Size() <= c.peerMax {
		_ = c.pc.Send(f)
	}
}

// fail ends the link: every waiting call gets err.
func (l *link) fail(err error) {
	if err == nil || errors.Is(err, net.ErrClosed) {
		err = errLinkClosed
	}
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	ws := l.waiters
	l.waiters = map[uint32]chan protocol.Frame{}
	l.mu.Unlock()
	for _, ch := range ws {
		close(ch)
	}
	l.pc.Abort()
}

// call sends f (a CALL; its call id is set here) and waits for the reply.
// from, if set, is the connection whose call is relayed.
func (l *link) call(ctx context.Context, f *protocol.Frame, from ...*conn) (protocol.Frame, error) {
	ch := make(chan protocol.Frame, 1)
	l.mu.Lock()
	if l.err != nil {
		err := l.err
		l.mu.Unlock()
		return protocol.Frame{}, err
	}
	for {
		l.nextID++
		if _, busy := l.waiters[l.nextID]; l.nextID != 0 && !busy {
			break
		}
	}
	f.CallID = l.nextID
	l.waiters[f.CallID] = ch
	if len(from) > 0 {
		l.relayed[f.Session] = from[0]
	}
	l.mu.Unlock()
	if err := l.pc.Send(f); err != nil {
		l.fail(err)
		return protocol.Frame{}, errLinkClosed
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return protocol.Frame{}, errLinkClosed
		}
		return r, nil
	case <-ctx.Done():
		l.mu.Lock()
		delete(l.waiters, f.CallID)
		l.mu.Unlock()
		return protocol.Frame{}, ctx.Err()
	}
}

// closeLinks closes every link; their readers end.
func (g *Gateway) closeLinks() {
	g.linkMu.Lock()
	slots := make([]*linkSlot, 0, len(g.links))
	for _, s := range g.links {
		slots = append(slots, s)
	}
	g.linkMu.Unlock()
	for _, s := range slots {
		s.mu.Lock()
		if s.l != nil {
			s.l.fail(ErrClosed)
		}
		s.mu.Unlock()
	}
}
