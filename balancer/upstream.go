package balancer

import (
	"errors"
	"sync"

	"github.com/graftlb/graftlb/protocol"
)

var (
	errBackendClosed  = errors.New("balancer: backend closed")
	errUpstreamClosed = errors.New("balancer: upstream connection closed")
)

// upstream is one multiplexed connection from the proxy to a gateway:
// calls of many client sessions share it, under call ids the proxy assigns.
type upstream struct {
	b  *backend
	pc *protocol.Conn
	// out is what the reader (serve) queues replies on: it is flushed
	// before the reader waits, so that every client connection is written
	// once for all the frames of one read.
	out protocol.Batch

	calls *callTable // the calls in flight, sharded by client connection

	// mu guards the active checks waiting for their PONG.
	mu     sync.Mutex
	pings  map[uint32]pingWaiter
	closed bool
}

func newUpstream(b *backend, pc *protocol.Conn) *upstream {
	u := &upstream{b: b, pc: pc, calls: newCallTable()}
	pc.FlushBeforeRead(&u.out)
	return u
}

// forward sends raw (a CALL frame, patched in place with the upstream call
// id) and records call c to route the reply. It fails only when the frame
// provably did not leave: the connection was already closed. A ONEWAY call
// is recorded like any other: a gateway acknowledges the ONEWAY calls a
// proxy sends under a non-zero id once they ran (SPEC.md section 3), which
// settles them, so they hold their slots and breaker tickets until then.
func (u *upstream) forward(raw []byte, c call) error {
	out := c.out
	c.out = nil
	id, ok := u.calls.add(c, raw)
	if !ok {
		return errUpstreamClosed
	}
	u.b.outstanding.Add(1)
	u.b.m.sent(len(raw))
	if err := out.Queue(u.pc.Writer, raw); err != nil {
		if _, ok := u.take(id); ok {
			return errUpstreamClosed
		}
		return nil // the connection broke and its failure path owns the call
	}
	return nil
}

// take removes and returns the call with upstream id id.
func (u *upstream) take(id uint32) (call, bool) {
	c, ok := u.calls.take(id)
	if ok {
		u.b.outstanding.Add(-1)
	}
	return c, ok
}

// serve reads the gateway's frames until the connection breaks, and
// returns the calls left in flight.
func (u *upstream) serve() map[uint32]call {
	var f protocol.Frame
	log := u.b.p.cfg.Logger
	for {
		raw, err := u.pc.ReadFrame()
		if err == nil {
			err = protocol.Decode(raw, &f)
		}
		if err != nil {
			select {
			case <-u.b.stop:
			default:
				log.Debug().Err(err).Str("gateway", u.b.name).Msg("upstream connection ended")
			}
			break
		}
		switch f.Type {
		case protocol.TypeResult, protocol.TypeError:
			if f.CallID == 0 {
				log.Warn().Str("gateway", u.b.name).Err(protocol.ErrorFromBody(f.Body)).Msg("gateway reported a connection error")
				continue
			}
			u.b.p.reply(u, f.CallID, &f, raw)
		case protocol.TypeCallback:
			u.b.p.callback(u, &f, raw)
		case protocol.TypeEvent:
			u.b.p.event(&f, raw)
		case protocol.TypePing:
			f.Type = protocol.TypePong
			_ = u.pc.Send(&f)
		case protocol.TypePong:
			u.pong(f.CallID)
		case protocol.TypeMoved:
			u.b.p.moved(u.b, &f)
		case protocol.TypeGoaway:
			if !u.b.draining.Swap(true) {
				log.Info().Str("gateway", u.b.name).Msg("gateway is draining (GOAWAY)")
				u.b.p.kick()
			}
		default:
			log.Warn().Str("gateway", u.b.name).Stringer("type", f.Type).Msg("unexpected frame from gateway")
		}
	}
	u.out.Flush()
	u.b.beginVerdict() // before the closed flag, so no call sees one without the other
	u.pc.Abort()
	calls := u.calls.close()
	u.mu.Lock()
	u.closed = true
	u.mu.Unlock()
	u.b.outstanding.Add(-int64(len(calls)))
	return calls
}

// expire removes the calls whose deadline is before now and returns them
// through fn, and the calls whose attempt timed out and that abandon lets
// go (callTable.expire) through retry.
func (u *upstream) expire(now int64, fn func(call), abandon func(*call, int64) bool, retry func(*backend, call)) {
	due := u.calls.expire(now, nil, abandon)
	if len(due) == 0 {
		return
	}
	u.b.outstanding.Add(-int64(len(due)))
	for _, c := range due {
		c.outcome(false, 0) // a timeout is a failure of the gateway
		if c.deadline != 0 && c.deadline <= now {
			fn(c)
			continue
		}
		retry(u.b, c)
	}
}

// freeID returns the first call id after last that is not 0 and not a key
// of inFlight: call ids are per connection and direction, and wrap.
func freeID[V any](inFlight map[uint32]V, last uint32) uint32 {
	id := last + 1
	for {
		if id == 0 {
			id = 1
		}
		if _, busy := inFlight[id]; !busy {
			return id
		}
		id++
	}
}
