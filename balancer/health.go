package balancer

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"time"

	"github.com/graftlb/graftlb/health"
	"github.com/graftlb/graftlb/protocol"
)

// The proxy's view of gateway health combines four signals (DESIGN.md
// section 5), each feeding the next picker through the control goroutine:
//
//   - connections: a gateway whose connections break and that refuses a
//     redial is dead (backend.maintain);
//   - active checks: a PING over one of the gateway's connections every
//     Check.Interval; Fall failures take it down, Rise successes bring it
//     back (health.Checker). This is what catches a hung (SIGSTOPped)
//     gateway whose sockets stay open;
//   - outlier detection: every answered call reports success or failure
//     (transport failures, timeouts, INTERNAL, UNAVAILABLE, OVERLOADED,
//     DEADLINE_EXCEEDED); consecutive failures or a failure rate eject a
//     gateway for a growing time (health.Detector);
//   - a circuit breaker per gateway, consulted on every call: an open one
//     sends stateless calls elsewhere and fails stateful ones with
//     CIRCUIT_OPEN (health.Breaker).
//
// When fewer than PanicThreshold of the connected gateways are healthy, the
// picker spreads over all connected ones (panic mode, as Envoy does) rather
// than overloading the few.

var errNotConnected = errors.New("balancer: no connection to the gateway")

// latencyHalfLife is how fast a gateway's latency estimate decays when it
// gets no calls, so that a gateway that was slow (or merely started cold) is
// tried again soon (Finagle's peak EWMA decays the same way). A gateway 40×
// slower than the rest is retried after about 5 half-lives: one slow call
// every few seconds, which no p99 notices.
const latencyHalfLife = 500 * time.Millisecond

// initHealth builds the checker and the detector.
func (p *Proxy) initHealth() error {
	cc := p.cfg.Health.Check
	cc.OnTransition = p.onCheck
	ch, err := health.NewChecker(cc)
	if err != nil {
		return err
	}
	oc := p.cfg.Health.Outlier
	oc.OnEjection = p.onEjection
	det, err := health.NewDetector(oc)
	if err != nil {
		ch.Close()
		return err
	}
	p.checker, p.detector = ch, det
	return nil
}

// addHealth registers a new backend with the health machinery.
func (p *Proxy) addHealth(b *backend) {
	var err error
	if b.rec, err = p.detector.Add(b.name); err != nil {
		p.cfg.Logger.Error().Err(err).Str("gateway", b.name).Msg("outlier detection")
	}
	s := p.conf().Health.Breaker
	s.OnStateChange = func(name string, from, to health.State) {
		ev := p.cfg.Logger.Info()
		if to == health.Open {
			ev = p.cfg.Logger.Warn()
			b.m.inc(tripsOf)
		}
		ev.Str("gateway", name).Stringer("from", from).Stringer("to", to).Msg("circuit breaker")
	}
	if b.breaker, err = health.NewBreaker(b.name, s); err != nil {
		p.cfg.Logger.Error().Err(err).Str("gateway", b.name).Msg("circuit breaker")
	}
	if err := p.checker.Add(b.name, b.probe); err != nil {
		p.cfg.Logger.Error().Err(err).Str("gateway", b.name).Msg("active checks")
	}
}

// removeHealth forgets a backend that left the pool.
func (p *Proxy) removeHealth(b *backend) {
	p.checker.Remove(b.name)
	p.detector.Remove(b.name)
}

// probe is the active check: a PING over one of the gateway's connections.
func (b *backend) probe(ctx context.Context) error {
	u := b.pickConn()
	if u == nil {
		return errNotConnected
	}
	return u.ping(ctx)
}

func (p *Proxy) onCheck(t health.Transition) {
	b := p.backendNamed(t.Target)
	if b == nil {
		return
	}
	b.checkUp.Store(t.To == health.Up)
	if t.To == health.Down {
		p.cfg.Logger.Warn().Str("gateway", t.Target).AnErr("cause", t.Err).Msg("active check: gateway down")
	} else {
		p.cfg.Logger.Info().Str("gateway", t.Target).Msg("active check: gateway up")
	}
	p.kick()
}

func (p *Proxy) onEjection(e health.Ejection) {
	b := p.backendNamed(e.Target)
	if b == nil {
		return
	}
	b.ejected.Store(e.Ejected)
	if e.Ejected {
		b.m.inc(ejectionsOf)
		p.cfg.Logger.Warn().Str("gateway", e.Target).Stringer("reason", e.Reason).Int("count", e.Count).
			Time("until", e.Until).Msg("outlier detection: gateway ejected")
	} else {
		p.cfg.Logger.Info().Str("gateway", e.Target).Msg("outlier detection: gateway returned")
	}
	p.kick()
}

func (p *Proxy) backendNamed(name string) *backend {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.backends[name]
}

// failureCode reports whether a gateway's error code means the gateway
// failed (as opposed to the call or its arguments).
func failureCode(c protocol.Code) bool {
	switch c {
	case protocol.CodeInternal, protocol.CodeUnavailable, protocol.CodeOverloaded, protocol.CodeDeadlineExceeded:
		return true
	}
	return false
}

// observe folds a round-trip time into the latency estimate: the estimate
// first decays for the time since the last sample, then moves 1/8 of the
// way to rtt. Decaying before mixing matters: a gateway that was slow once
// and then idle must not get its old estimate back with each rare sample.
func (b *backend) observe(rtt, now int64) {
	for {
		old := b.ewma.Load()
		last := b.lastSample.Load()
		cur := decayed(old, now-last)
		next := cur + (rtt-cur)/8
		if old == 0 {
			next = rtt
		}
		if b.ewma.CompareAndSwap(old, next) {
			b.lastSample.Store(now)
			return
		}
	}
}

// decayed is estimate e after idle nanoseconds without a sample.
func decayed(e, idle int64) int64 {
	if idle <= 0 || e == 0 {
		return e
	}
	return int64(float64(e) * math.Exp2(-float64(idle)/float64(latencyHalfLife)))
}

// latencyFloor is added to every estimate: differences of a fraction of a
// millisecond (a GC pause, a cold connection) are noise that must not starve
// a gateway, while a gateway that is really slow stays far costlier.
const latencyFloor = time.Millisecond

// cost is the expected wait of a new call on b: its decayed latency
// estimate (plus latencyFloor) times the calls it has in flight plus one,
// divided by its weight.
func (b *backend) cost(now int64) float64 {
	e := decayed(b.ewma.Load(), now-b.lastSample.Load())
	w := b.weight.Load()
	if w <= 0 {
		w = 1
	}
	return float64(e+int64(latencyFloor)) * float64(b.outstanding.Load()+1) / float64(w)
}

// healthy says whether b takes new work outside panic mode.
func (b *backend) healthy() bool { return b.checkUp.Load() && !b.ejected.Load() }

// pingWaiter is an active check waiting for its PONG.
type pingWaiter = chan struct{}

var pingIDs atomic.Uint32

// ping sends a PING on the connection and waits for its PONG.
func (u *upstream) ping(ctx context.Context) error {
	id := pingIDs.Add(1)
	ch := make(pingWaiter)
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return errUpstreamClosed
	}
	if u.pings == nil {
		u.pings = make(map[uint32]pingWaiter)
	}
	u.pings[id] = ch
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		delete(u.pings, id)
		u.mu.Unlock()
	}()
	if err := u.pc.Send(&protocol.Frame{Type: protocol.TypePing, CallID: id}); err != nil {
		return err
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pong wakes the active check waiting for PONG id.
func (u *upstream) pong(id uint32) {
	u.mu.Lock()
	ch, ok := u.pings[id]
	delete(u.pings, id)
	u.mu.Unlock()
	if ok {
		close(ch)
	}
}
