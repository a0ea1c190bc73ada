package transport

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graftlb/graftlb/protocol"
)

// Link is a protocol connection to one gateway over which a Subscriber
// runs the calls it takes from NATS. It speaks to the gateway as a proxy
// does (HELLO with PROXY), so the gateway acknowledges ONEWAY calls once
// they ran and enforces its limits as for any proxy. CALLBACKs are
// answered UNAVAILABLE (a caller over NATS has no callback channel) and
// EVENTs are dropped, counted.
type Link struct {
	pc   *protocol.Conn
	done chan struct{}
	wg   sync.WaitGroup // the keepalive goroutine
	// EventsDropped counts EVENTs the gateway sent over the link.
	EventsDropped atomic.Int64

	mu     sync.Mutex // guards the fields below
	calls  map[uint32]func([]byte, error)
	next   uint32
	closed bool
}

// Handshake timeout of a Link.
const linkHelloTimeout = 10 * time.Second

// NewLink says HELLO on nc, a connection to a gateway, waits for WELCOME,
// and reads the gateway's answers until Close or until the connection ends.
func NewLink(nc net.Conn, client string, limits protocol.Limits) (*Link, error) {
	pc := protocol.NewStreamConn(nc, protocol.ConnOptions{Limits: limits, BlockWhenFull: true})
	body, _ := protocol.Marshal(protocol.Hello{Client: client, MaxFrame: uint32(limits.WithDefaults().MaxFrame)})
	if err := pc.Send(&protocol.Frame{Type: protocol.TypeHello, Flags: protocol.FlagProxy, Body: body}); err != nil {
		_ = pc.Close()
		return nil, fmt.Errorf("transport: link hello: %w", err)
	}
	_ = pc.SetReadDeadline(time.Now().Add(linkHelloTimeout))
	b, err := pc.ReadFrame()
	var f protocol.Frame
	if err == nil {
		err = protocol.Decode(b, &f)
	}
	if err == nil && f.Type != protocol.TypeWelcome {
		err = fmt.Errorf("gateway answered %s to HELLO", f.Type)
		if f.Type == protocol.TypeError {
			err = protocol.ErrorFromBody(f.Body)
		}
	}
	if err != nil {
		_ = pc.Close()
		return nil, fmt.Errorf("transport: link handshake: %w", err)
	}
	_ = pc.SetReadDeadline(time.Time{})
	var w protocol.Welcome
	_ = protocol.Unmarshal(f.Body, &w)
	l := &Link{pc: pc, done: make(chan struct{}), calls: map[uint32]func([]byte, error){}}
	go l.read()
	if w.IdleTimeoutMs > 0 {
		l.wg.Add(1)
		go l.keepalive(time.Duration(w.IdleTimeoutMs) * time.Millisecond / 3)
	}
	return l, nil
}

// keepalive PINGs the gateway so that it does not close the link as idle
// between calls, until the link ends.
func (l *Link) keepalive(every time.Duration) {
	defer l.wg.Done()
	t := time.NewTicker(max(every, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-t.C:
			_ = l.pc.Send(&protocol.Frame{Type: protocol.TypePing})
		}
	}
}

var errLinkClosed = errors.New("transport: link closed")

// Exec sends the CALL frame (patching its call id in place) and calls
// reply once with the gateway's RESULT or ERROR, or, when the link ends
// first, with an ERROR UNAVAILABLE made here and a non-nil err (the call
// may or may not have run).
func (l *Link) Exec(frame []byte, reply func(answer []byte, err error)) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		reply(linkError(frame, "the connection to the gateway is closed"), errLinkClosed)
		return
	}
	l.next++
	if l.next == 0 {
		l.next = 1
	}
	for l.calls[l.next] != nil {
		l.next++
	}
	id := l.next
	l.calls[id] = reply
	l.mu.Unlock()
	protocol.SetCallID(frame, id)
	if err := l.pc.WriteFrame(frame); err != nil {
		if r := l.take(id); r != nil {
			r(linkError(frame, "the connection to the gateway broke: "+err.Error()), err)
		}
	}
}

func linkError(frame []byte, msg string) []byte {
	return errorFrame(sessionOf(frame), protocol.CodeUnavailable, msg, "")
}

func (l *Link) take(id uint32) func([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.calls[id]
	delete(l.calls, id)
	return r
}

// read dispatches the gateway's frames until the connection ends, then
// fails the calls still waiting.
func (l *Link) read() {
	defer close(l.done)
	var f protocol.Frame
	for {
		b, err := l.pc.ReadFrame()
		if err != nil {
			break
		}
		if protocol.Decode(b, &f) != nil {
			continue
		}
		switch f.Type {
		case protocol.TypeResult, protocol.TypeError:
			if r := l.take(f.CallID); r != nil {
				r(append([]byte(nil), b...), nil)
			}
		case protocol.TypeCallback:
			_ = l.pc.Send(&protocol.Frame{Type: protocol.TypeError, CallID: f.CallID, Session: f.Session,
				Body: protocol.AppendErrorBody(nil, protocol.CodeUnavailable, "callbacks do not travel over NATS", "")})
		case protocol.TypeEvent:
			l.EventsDropped.Add(1)
		case protocol.TypePing:
			f.Type = protocol.TypePong
			_ = l.pc.Send(&f)
		}
	}
	l.mu.Lock()
	l.closed = true
	calls := l.calls
	l.calls = map[uint32]func([]byte, error){}
	l.mu.Unlock()
	for _, r := range calls {
		r(linkError(nil, "the connection to the gateway broke with the call in flight; it may have run"), errLinkClosed)
	}
}

// Done is closed when the link has ended.
func (l *Link) Done() <-chan struct{} { return l.done }

// Close ends the link; calls still waiting get UNAVAILABLE.
func (l *Link) Close() error {
	err := l.pc.Close()
	<-l.done
	l.wg.Wait()
	return err
}
