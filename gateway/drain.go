package gateway

import (
	"context"
	"time"
)

// Drain stops the gateway gracefully: it sends GOAWAY (DRAINING) to every
// connected peer, refuses new sessions with DRAINING (stateless calls and
// the sessions it holds keep working), turns /readyz to 503, and waits
// until no call has been in flight for DrainQuiet, or DrainGrace has
// passed. Then it closes every connection (flushing what is queued) and
// listener, and returns nil.
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
	g.log.Info().Dur("quiet", g.cfg.DrainQuiet).Dur("grace", g.cfg.DrainGrace).Msg("draining")
	for _, c := range g.snapshotConns() {
		if c.welcomed.Load() {
			c.sendGoaway()
		}
	}
	err := g.waitQuiet(ctx)
	g.shutdown(err == nil)
	return err
}

// waitQuiet returns nil once no call has been in flight for DrainQuiet
// (counted from the start of the drain at the earliest) or DrainGrace has
// passed.
func (g *Gateway) waitQuiet(ctx context.Context) error {
	clk := g.cfg.Clock
	start := clk.Now()
	grace := clk.NewTimer(g.cfg.DrainGrace)
	defer grace.Stop()
	tick := clk.NewTicker(min(max(g.cfg.DrainQuiet/10, time.Millisecond), 100*time.Millisecond))
	defer tick.Stop()
	for {
		if g.inflight.Load() == 0 {
			last := time.Unix(0, g.lastActivity.Load())
			if start.After(last) {
				last = start
			}
			if clk.Now().Sub(last) >= g.cfg.DrainQuiet {
				g.log.Info().Msg("drained: no calls in flight")
				return nil
			}
		}
		select {
		case <-tick.C():
		case <-grace.C():
			g.log.Warn().Int64("calls_in_flight", g.inflight.Load()).Msg("drain grace period over")
			return nil
		case <-ctx.Done():
			g.log.Warn().Err(ctx.Err()).Msg("drain interrupted: closing now")
			return ctx.Err()
		case <-g.stop:
			return ErrClosed
		}
	}
}
