package balancer

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/health"
	"github.com/graftlb/graftlb/protocol"
)

// backend is one gateway of the pool, for as long as its member (name and
// instance) stays in the pool. A gateway that comes back under the same name
// with a new instance is a new backend: the sessions of the old one are lost.
//
// The backend keeps Config.BackendConns multiplexed connections (upstreams)
// to its gateway, each maintained by a goroutine the backend owns.
type backend struct {
	// Immutable after newBackend.
	p    *Proxy
	name string
	addr string // the gateway's TCP listener
	tls  bool   // the listener speaks TLS (Addrs.TLS)
	stop chan struct{}
	wg   sync.WaitGroup
	// dialed is closed after the first connection attempt of slot 0, so
	// that a starting proxy knows which gateways answer before it serves.
	dialed     chan struct{}
	dialedOnce sync.Once

	// member is written by the control goroutine (update) under mu; the
	// control goroutine reads it freely, others under mu.
	member discovery.Member

	// Data-path state, atomics only.
	weight      atomic.Int64  // the member's weight, for picking
	outstanding atomic.Int64  // calls in flight, for picking
	served      atomic.Uint64 // replies received
	sessions    atomic.Int64  // sessions bound here by this proxy
	sessionTTL  atomic.Int64  // the gateway's session TTL (WELCOME), nanoseconds; 0: unknown
	draining    atomic.Bool   // the member says draining, or the gateway sent GOAWAY
	adminDrain  atomic.Bool   // an operator drained it (DrainGateway): no new sessions here
	retiring    atomic.Bool   // a reload is removing it from the pool (Retire): no new sessions here
	up          atomic.Bool   // at least one upstream is connected
	// epoch grows each time the gateway is found dead (its connections
	// broke and it refused a new one): sessions bound in an older epoch
	// lost their objects.
	epoch   atomic.Uint64
	removed atomic.Bool
	conns   atomic.Pointer[[]*upstream] // connected upstreams
	rr      atomic.Uint32
	// verdict is set while a broken connection's redial is pending and is
	// closed when it is known whether the gateway lives: calls of its
	// sessions wait for it rather than fail with UNAVAILABLE a moment before
	// they would fail with SESSION_LOST.
	verdict atomic.Pointer[chan struct{}]
	// Health (see health.go): active checks and outlier detection set these;
	// the breaker and recorder take every call's outcome.
	checkUp    atomic.Bool
	ejected    atomic.Bool
	ewma       atomic.Int64 // round-trip time estimate, nanoseconds
	lastSample atomic.Int64 // unix nanoseconds of the last estimate update
	breaker    *health.Breaker
	rec        *health.Recorder
	m          *gwMetrics // its counters (metrics.go); nil when metrics are off

	// mu guards the slots' upstreams and deadSeen.
	mu    sync.Mutex
	slots []*upstream
	// deadSeen is set when the gateway was found dead and cleared by the
	// next successful dial, so that the epoch grows once per death.
	deadSeen bool
}

func newBackend(p *Proxy, m discovery.Member) *backend {
	b := &backend{p: p, name: m.Name, addr: m.Addrs.TCP, tls: m.Addrs.TLS, member: m, stop: make(chan struct{}), dialed: make(chan struct{})}
	b.slots = make([]*upstream, p.cfg.BackendConns)
	empty := []*upstream{}
	b.conns.Store(&empty)
	b.draining.Store(m.State == discovery.StateDraining)
	b.weight.Store(int64(m.Weight))
	b.checkUp.Store(true)
	b.m = p.metrics.gateway(m.Name)
	b.adminDrain.Store(p.operator.drained(m.Name))
	return b
}

// update takes a new description of the same member (state, modules,
// weight). Only the control goroutine calls it.
func (b *backend) update(m discovery.Member) {
	b.mu.Lock()
	b.member = m
	b.mu.Unlock()
	b.weight.Store(int64(m.Weight))
	if m.State == discovery.StateDraining && !b.draining.Swap(true) {
		b.p.cfg.Logger.Info().Str("gateway", b.name).Msg("gateway is draining (membership)")
	}
}

// start launches the connection slots.
func (b *backend) start() {
	for i := range b.slots {
		b.wg.Add(1)
		go b.maintain(i)
	}
}

// close stops the backend: its upstreams close and their calls in flight
// fail as on the gateway's death (the member left the pool).
func (b *backend) close() {
	b.removed.Store(true)
	close(b.stop)
	b.firstDialDone()
	b.mu.Lock()
	for _, u := range b.slots {
		if u != nil {
			u.pc.Abort()
		}
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// spillBacklog is the write backlog past which calls spill from a gateway's
// first connection to the next.
const spillBacklog = 32 << 10

// pickConn returns a connected upstream, or nil. Calls stick to the first
// connection while its write queue is short, so that frames batch into
// few writes (syscalls are most of the cost of forwarding: one connection
// forwards ~35% more calls per core than two used round robin); they spill
// to the others when it backs up, and the others take over when it breaks.
func (b *backend) pickConn() *upstream {
	cs := *b.conns.Load()
	for _, u := range cs {
		if u.pc.Pending() < spillBacklog {
			return u
		}
	}
	if len(cs) == 0 {
		return nil
	}
	return cs[int(b.rr.Add(1))%len(cs)]
}

// holds reports whether the backend may hold sessions: in the pool, and
// not found dead since epoch.
func (b *backend) holds(epoch uint64) bool {
	return !b.removed.Load() && b.epoch.Load() == epoch
}

func (b *backend) setSlot(i int, u *upstream) {
	b.mu.Lock()
	b.slots[i] = u
	cs := make([]*upstream, 0, len(b.slots))
	for _, s := range b.slots {
		if s != nil {
			cs = append(cs, s)
		}
	}
	b.conns.Store(&cs)
	wasUp := b.up.Swap(len(cs) > 0)
	b.mu.Unlock()
	if wasUp != (len(cs) > 0) {
		b.p.kick()
	}
}

// markDead records that the gateway is gone: its sessions are lost.
func (b *backend) markDead() {
	dead := b.epoch.Add(1) - 1
	b.p.cfg.Logger.Warn().Str("gateway", b.name).Str("addr", b.addr).Msg("gateway unreachable; its sessions are lost")
	b.p.kick()
	b.p.loseAllOn(b, dead, "gateway "+b.name+" died holding the session")
}

// maintain keeps slot i connected until the backend stops. When an upstream
// breaks it redials at once: if the gateway refuses, the gateway is dead
// and the calls in flight on the broken connection fail with SESSION_LOST
// (stateful) rather than UNAVAILABLE.
func (b *backend) maintain(i int) {
	defer b.wg.Done()
	backoff := 50 * time.Millisecond
	var orphans map[uint32]call // calls of a broken upstream, to fail
	for {
		u, err := b.dial()
		if orphans != nil {
			// One failed redial after a broken connection means the gateway
			// is gone (on loopback and LANs a live process accepts at once).
			dead := err != nil && !b.removed.Load()
			if dead {
				b.markDeadOnce()
			}
			if err == nil {
				b.setSlot(i, u)
			}
			b.endVerdict()
			b.p.failOrphans(b, orphans, dead || b.removed.Load())
			orphans = nil
		}
		if err != nil {
			if i == 0 {
				b.firstDialDone()
			}
			select {
			case <-b.stop:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		b.setSlot(i, u)
		if i == 0 {
			b.firstDialDone()
		}
		select {
		case <-b.stop:
			u.pc.Abort()
		default:
		}
		orphans = u.serve() // it begins a verdict
		b.setSlot(i, nil)
		select {
		case <-b.stop:
			b.endVerdict()
			b.p.failOrphans(b, orphans, true)
			return
		default:
		}
	}
}

// beginVerdict notes that a connection broke and its redial is pending.
func (b *backend) beginVerdict() {
	ch := make(chan struct{})
	b.verdict.CompareAndSwap(nil, &ch)
}

// endVerdict wakes the calls waiting to learn whether the gateway lives.
func (b *backend) endVerdict() {
	if ch := b.verdict.Swap(nil); ch != nil {
		close(*ch)
	}
}

// awaitVerdict waits, up to d, for a pending verdict; it reports whether
// there was one.
func (b *backend) awaitVerdict(d time.Duration) bool {
	ch := b.verdict.Load()
	if ch == nil {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-*ch:
	case <-t.C:
	case <-b.stop:
	}
	return true
}

// firstDialDone marks the first connection attempt done and tells the
// control goroutine.
func (b *backend) firstDialDone() {
	b.dialedOnce.Do(func() {
		close(b.dialed)
		b.p.kick()
	})
}

// markDeadOnce bumps the epoch unless another slot already did since the
// gateway was last reachable.
func (b *backend) markDeadOnce() {
	b.mu.Lock()
	already := b.deadSeen
	b.deadSeen = true
	b.mu.Unlock()
	if !already {
		b.markDead()
	}
}

// dial opens and greets one upstream connection.
func (b *backend) dial() (*upstream, error) {
	select {
	case <-b.stop:
		return nil, errBackendClosed
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.p.conf().DialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", b.addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	if nc, err = b.p.tls.Dial(ctx, nc, b.tls, b.addr); err != nil {
		return nil, err
	}
	pc := protocol.NewStreamConn(nc, protocol.ConnOptions{Limits: b.p.upLimits, BlockWhenFull: true})
	w, err := greet(pc, b.p.instance, b.p.conf().DialTimeout)
	if err != nil {
		pc.Abort()
		return nil, err
	}
	if w.SessionTTLMs > 0 && b.sessionTTL.Swap(int64(w.SessionTTLMs)*int64(time.Millisecond)) == 0 {
		b.p.kick() // the picker announces the pool's session TTL
	}
	b.mu.Lock()
	b.deadSeen = false
	b.mu.Unlock()
	return newUpstream(b, pc), nil
}

// greet says HELLO as proxy instance and waits for WELCOME.
func greet(pc *protocol.Conn, instance string, timeout time.Duration) (protocol.Welcome, error) {
	var w protocol.Welcome
	body, _ := protocol.Marshal(protocol.Hello{Client: "graftlb-proxy/1", Instance: instance})
	if err := pc.Send(&protocol.Frame{Type: protocol.TypeHello, Flags: protocol.FlagProxy,
		Session: protocol.NewSessionID(), Body: body}); err != nil {
		return w, err
	}
	_ = pc.SetReadDeadline(time.Now().Add(timeout))
	defer pc.SetReadDeadline(time.Time{})
	raw, err := pc.ReadFrame()
	if err != nil {
		return w, err
	}
	var f protocol.Frame
	if err := protocol.Decode(raw, &f); err != nil {
		return w, err
	}
	switch f.Type {
	case protocol.TypeWelcome:
		_ = protocol.Unmarshal(f.Body, &w)
		return w, nil
	case protocol.TypeError:
		return w, protocol.ErrorFromBody(f.Body)
	}
	return w, protocol.Errorf(protocol.CodeBadFrame, "gateway answered HELLO with %s", f.Type)
}
