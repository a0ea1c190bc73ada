package client

import (
	"context"
	"errors"
	"net/url"
	"time"

	"github.com/graftlb/graftlb/protocol"
)

// Moving a Conn to another connection without failing calls: a draining
// proxy's GOAWAY with RECONNECT (the same target again, where a balancer
// in front picks another proxy), and a gateway's MOVED for the
// connection's own session (the gateway it moved to).

// startMove answers a GOAWAY with RECONNECT from a draining proxy on old:
// the Conn dials a new connection to the same target (a balancer in front
// picks another proxy), resumes its session there and sends every new
// call on it, while the calls in flight on old finish; then it closes old.
// Calls never fail for the move: until the new connection is up they go
// on old, which the proxy still serves.
func (c *Conn) startMove(old *protocol.Conn) {
	c.mu.Lock()
	if c.moving || c.closed || c.pc != old {
		c.mu.Unlock()
		return
	}
	c.moving, c.leaving = true, old
	c.mu.Unlock()
	c.wg.Add(1)
	go c.move(old)
}

func (c *Conn) move(old *protocol.Conn) {
	defer c.wg.Done()
	backoff := 50 * time.Millisecond
	for {
		npc, w, err := c.dialResumed(c.currentTarget())
		if err == nil {
			c.mu.Lock()
			if c.closed || c.pc != old {
				// Closed, or old broke meanwhile and run reconnects.
				c.moving = false
				c.mu.Unlock()
				npc.Abort()
				return
			}
			c.pc, c.welcome = npc, w
			c.moving = false
			c.mu.Unlock()
			c.opts.Logger.Info().Str("target", c.currentTarget().String()).Msg("moved to a new connection: the proxy is draining")
			c.wg.Add(2)
			go c.run(npc)
			go c.resubscribe()
			break
		}
		c.opts.Logger.Debug().Err(err).Str("target", c.currentTarget().String()).Msg("moving off a draining proxy: dial failed")
		select {
		case <-c.done:
		case <-old.Done(): // old broke first: run's reconnect takes over
		case <-time.After(backoff):
			backoff = min(2*backoff, time.Second)
			continue
		}
		c.mu.Lock()
		c.moving = false
		c.mu.Unlock()
		return
	}
	c.retire(old)
}

// retire lets the calls in flight on old finish, then closes it.
func (c *Conn) retire(old *protocol.Conn) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for c.inflightOn(old) > 0 {
		select {
		case <-c.done:
			return
		case <-old.Done():
			return
		case <-t.C:
		}
	}
	_ = old.Close()
}

// follow answers ERROR MOVED for the connection's own session (a direct
// connection to a gateway that handed the session to another while
// draining, SPEC.md section 7): the Conn moves to the gateway at target,
// resuming its session there, and later calls go there; calls in flight on
// old finish first.
func (c *Conn) follow(ctx context.Context, old *protocol.Conn, target string) error {
	u, err := ParseTarget(target)
	if err != nil {
		return protocol.Errorf(protocol.CodeMoved, "the session moved to %q, which is not a target: %v", target, err)
	}
	c.mu.Lock()
	if c.pc != old { // another call followed already
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	npc, w, err := c.dialResumed(u)
	if err != nil {
		return protocol.Errorf(protocol.CodeUnavailable, "follow the session to %s: %v", u, err)
	}
	c.mu.Lock()
	if c.closed || c.pc != old {
		c.mu.Unlock()
		npc.Abort()
		return nil
	}
	c.pc, c.welcome, c.target, c.leaving = npc, w, u, old
	c.mu.Unlock()
	c.opts.Logger.Info().Str("target", u.String()).Msg("followed the session to the gateway it moved to")
	c.wg.Add(3)
	go c.run(npc)
	go c.resubscribe()
	go func() {
		defer c.wg.Done()
		c.retire(old)
	}()
	return nil
}

// movedTo returns the target a MOVED error names for the connection's
// own session (the one a Conn follows).
func (c *Conn) movedTo(err error, f *protocol.Frame) (string, bool) {
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeMoved || pe.Type == "" {
		return "", false
	}
	return pe.Type, f.Session.IsZero() || f.Session == c.session.id
}

// currentTarget is where the Conn dials (it changes when it follows a
// moved session).
func (c *Conn) currentTarget() *url.URL {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.target
}

// inflightOn counts the calls in flight on pc.
func (c *Conn) inflightOn(pc *protocol.Conn) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, cl := range c.pending {
		if cl.pc == pc {
			n++
		}
	}
	return n
}

// dialResumed dials target and resumes the connection's session there.
func (c *Conn) dialResumed(target *url.URL) (*protocol.Conn, protocol.Welcome, error) {
	ctx, cancel := context.WithTimeout(c.cbCtx, c.opts.DialTimeout)
	defer cancel()
	pc, err := dialTransport(ctx, target, c.opts)
	if err != nil {
		return nil, protocol.Welcome{}, err
	}
	_, w, err := handshake(pc, c.opts, c.session.id, true)
	if err != nil {
		pc.Abort()
		return nil, w, err
	}
	return pc, w, nil
}

// refusedByDrain reports whether err is a draining proxy's refusal of a
// call it did not run, on connection pc that it asked the Conn to leave.
func (c *Conn) refusedByDrain(err error, pc *protocol.Conn) bool {
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeDraining {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return pc != nil && c.leaving == pc
}

// awaitMove waits until the Conn has moved off pc (or lost it), or ctx
// ends.
func (c *Conn) awaitMove(ctx context.Context, pc *protocol.Conn) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		c.mu.Lock()
		cur, closed := c.pc, c.closed
		c.mu.Unlock()
		switch {
		case closed:
			return ErrClosed
		case cur != nil && cur != pc:
			return nil // moved (or reconnected)
		case cur == nil && !c.opts.AutoReconnect:
			return nil // the resend fails: not connected
		}
		select {
		case <-ctx.Done():
			return ctxErr(ctx)
		case <-c.done:
			return ErrClosed
		case <-t.C:
		}
	}
}

// movedNotice answers a gateway's MOVED frame on pc: the connection's own
// session moved to the gateway whose target the body names (SPEC.md
// section 7, Handoff), so the Conn follows it there at once, before the
// draining gateway closes pc.
func (c *Conn) movedNotice(pc *protocol.Conn, f *protocol.Frame) {
	if f.Session != c.session.id || len(f.Body) == 0 {
		return
	}
	e := protocol.ErrorFromBody(f.Body)
	if e.Code != protocol.CodeMoved || e.Type == "" {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(c.cbCtx, c.opts.DialTimeout)
		defer cancel()
		if err := c.follow(ctx, pc, e.Type); err != nil {
			c.opts.Logger.Warn().Err(err).Msg("could not follow the moved session")
		}
	}()
}
