package balancer

import (
	"context"
	"time"

	"github.com/graftlb/graftlb/protocol"
)

// drainIdle is how long after GOAWAY a client connection with no call in
// flight is given before the proxy closes it (a client that honours
// RECONNECT closes it first).
const drainIdle = time.Second

// moveWindow is how long after GOAWAY a draining proxy still forwards new
// calls on the connection; later ones are refused with DRAINING, unrun, so
// that the connection empties even when its client has nowhere to move
// (no other proxy behind the same address yet) and keeps calling. The Go
// client resends such a call on its new connection.
const moveWindow = 2 * time.Second

// DefaultDrainGrace is the longest the proxy command lets Drain wait for
// the clients to move (its --drain-grace) before it closes the proxy.
const DefaultDrainGrace = 30 * time.Second

// Drain stops the proxy gracefully, as a rolling restart of the proxy tier
// needs (SPEC.md section 4, GOAWAY with RECONNECT):
//
//  1. Ready fails at once, so that the balancer in front stops sending;
//  2. after Config.DrainDelay the listeners close (new connections are
//     refused, and the balancer in front redispatches them);
//  3. every client connection gets GOAWAY with RECONNECT: clients move to
//     another proxy and resume their sessions there, while the calls in
//     flight here finish;
//  4. a connection is closed once it has had no call in flight for a
//     moment (or the client closed it).
//
// Drain returns when no client connection is left, or with ctx's error
// when ctx ends first (the caller's drain grace); either way the caller
// then calls Close.
func (p *Proxy) Drain(ctx context.Context) error {
	if p.draining.Swap(true) {
		return nil
	}
	p.cfg.Logger.Info().Dur("delay", p.cfg.DrainDelay).Msg("draining: not ready; closing listeners after the delay")
	select {
	case <-time.After(p.conf().DrainDelay):
	case <-ctx.Done():
	}
	p.mu.Lock()
	p.lns.Close()
	downs := make([]*downstream, 0, len(p.downs))
	for d := range p.downs {
		downs = append(downs, d)
	}
	p.mu.Unlock()
	p.cfg.Logger.Info().Int("clients", len(downs)).Msg("draining: GOAWAY to every client connection")
	goaway := protocol.Frame{Type: protocol.TypeGoaway, Flags: protocol.FlagReconnect,
		Body: protocol.AppendErrorBody(nil, protocol.CodeDraining, "proxy "+p.cfg.Name+" is draining: reconnect", "")}
	sent := time.Now().UnixNano()
	for _, d := range downs {
		d.goawayAt.Store(sent)
		_ = d.pc.Send(&goaway)
	}
	idleSince := map[*downstream]time.Time{}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for start := time.Now(); ; {
		p.mu.Lock()
		left := len(p.downs)
		downs = downs[:0]
		for d := range p.downs {
			downs = append(downs, d)
		}
		p.mu.Unlock()
		if left == 0 {
			p.cfg.Logger.Info().Msg("drained: no client connection left")
			return nil
		}
		now := time.Now()
		for _, d := range downs {
			if d.busy() {
				delete(idleSince, d)
				continue
			}
			since, ok := idleSince[d]
			if !ok {
				idleSince[d] = now
				continue
			}
			if now.Sub(since) >= drainIdle/2 && now.Sub(start) >= drainIdle {
				_ = d.pc.Close() // its reader wakes and closes the rest
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			p.cfg.Logger.Warn().Int("clients", left).Msg("drain grace over; closing the remaining client connections")
			return ctx.Err()
		}
	}
}

// busy reports whether the connection has calls in flight or callbacks
// waiting for the client.
func (d *downstream) busy() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.ids)+d.oneways+len(d.cbs) > 0
}
