package gateway

import (
	"context"
	"time"

	"github.com/graftlb/graftlb/protocol"
)

// Drain stops the gateway gracefully: it sends GOAWAY (DRAINING) to every
// connected peer, refuses new sessions with DRAINING (stateless calls and
// the sessions it holds keep working), and turns /readyz to 503.
//
// With a pool (SetPool; discovery.JoinGateway sets it) it then moves each
// session it holds to the next gateway of the session's preference list
// as soon as the session is quiet and movable (every object of a type
// registered with Restore, no call in flight, no topic subscription of a
// direct client), tells the proxies (MOVED), and relays the calls that
// still come for moved sessions. It stops once no call has been in flight
// and no session moved for DrainQuiet, and it holds no session that may
// still move or that can never move (those it serves until DrainGrace);
// movable sessions that no gateway of the pool can take (the whole pool
// drains) do not hold it up. Without a pool nothing moves, and it stops
// once no call has been in flight for DrainQuiet. Either way it stops at
// DrainGrace at the latest, and the sessions it still holds then are
// lost: they are logged and counted (Stats.SessionsLostAtDrain). Then it closes every connection (flushing
// what is queued) and listener, and returns nil.
//
// If ctx ends first, Drain closes everything at once and returns ctx's
// error; if Close interrupts it, it returns ErrClosed. A second Drain
// waits for the first.
func (g *Gateway) Drain(ctx context.Context) error {
	if !g.transition(StateDraining, StateNew, StateReady) {
		select {
		case <-g.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	handoff := g.pool.Load() != nil
	g.log.Info().Dur("quiet", g.cfg.DrainQuiet).Dur("grace", g.cfg.DrainGrace).Bool("handoff", handoff).
		Int("sessions", g.sessions.count()).Msg("draining")
	for _, c := range g.snapshotConns() {
		if c.welcomed.Load() {
			c.sendGoaway()
		}
	}
	err := g.waitDrained(ctx, handoff)
	if n := g.sessions.count(); n > 0 {
		g.sessionsLost.Add(uint64(n))
		g.log.Warn().Int("sessions", n).Bool("handoff", handoff).Msg("drain over: sessions that did not move are lost")
	}
	g.shutdown(err == nil)
	return err
}

// waitDrained returns nil once the drain may end: no call in flight and no
// session moved for DrainQuiet (counted from the start of the drain at the
// earliest) and, with handoff, no session held that may still move or
// must be kept (see keeps); or once DrainGrace has passed. With handoff it
// moves sessions meanwhile.
func (g *Gateway) waitDrained(ctx context.Context, handoff bool) error {
	clk := g.cfg.Clock
	start := clk.Now()
	grace := clk.NewTimer(g.cfg.DrainGrace)
	defer grace.Stop()
	tick := clk.NewTicker(min(max(g.cfg.DrainQuiet/10, time.Millisecond), 25*time.Millisecond))
	defer tick.Stop()
	// Moves in progress end with the grace period.
	mctx, cancel := context.WithTimeout(ctx, g.cfg.DrainGrace)
	defer cancel()
	retry := map[protocol.SessionID]time.Time{}
	for {
		var v *poolView
		if handoff {
			if v = g.view(); v != nil {
				g.moveAll(mctx, v, retry)
			}
		}
		idleFrom := time.Unix(0, g.lastActivity.Load())
		if start.After(idleFrom) {
			idleFrom = start
		}
		if g.inflight.Load() == 0 && clk.Now().Sub(idleFrom) >= g.cfg.DrainQuiet && (!handoff || !g.keeps(v)) {
			g.log.Info().Uint64("sessions_moved", g.sessionsMoved.Load()).Int("sessions_held", g.sessions.count()).
				Dur("took", clk.Now().Sub(start)).Msg("drained: no call in flight, no session to move")
			return nil
		}
		select {
		case <-tick.C():
		case <-grace.C():
			g.log.Warn().Int64("calls_in_flight", g.inflight.Load()).Int("sessions", g.sessions.count()).
				Msg("drain grace period over")
			return nil
		case <-ctx.Done():
			g.log.Warn().Err(ctx.Err()).Msg("drain interrupted: closing now")
			return ctx.Err()
		case <-g.stop:
			return ErrClosed
		}
	}
}

// keeps reports whether the gateway holds a session that keeps a drain
// with handoff going: one that can still move (movable, and a gateway of
// the pool may take it), or one that can never move (an object of a type
// without Restore, a topic subscription of a direct client), which is kept
// and served until the grace period ends. Movable sessions that no
// gateway can take (the whole pool drains) do not keep it.
func (g *Gateway) keeps(v *poolView) bool {
	for _, s := range g.sessions.list() {
		if !s.movableType() || g.topics.hasSession(s.id) {
			return true
		}
		if v != nil && len(v.targets(g.cfg.Name, s.id, s.modules())) > 0 {
			return true
		}
	}
	return false
}
