package balancer

import (
	"net"
	"sync"
	"sync/atomic"

	"github.com/graftlb/graftlb/health"
)

// The admin views of pass-through mode (GET /pool, GET /stats), as the
// proxy has them: which backends are live and how many client
// connections each carries.

// countedConn is a backend connection that counts itself open.
type countedConn struct {
	net.Conn
	n    *atomic.Int64
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.n.Add(-1) })
	return c.Conn.Close()
}

// forwarded returns backend name's open connection count, counting one
// more: the caller is opening a connection to it.
func (p *Passthrough) forwarded(name string) *atomic.Int64 {
	v, _ := p.perBackend.LoadOrStore(name, new(atomic.Int64))
	n := v.(*atomic.Int64)
	n.Add(1)
	return n
}

// Pool returns the pass-through backends, sorted by name: state "ready"
// when the liveness check passes, else "down".
func (p *Passthrough) Pool() []PoolMember {
	pk := p.snap.Load()
	if pk == nil {
		return nil
	}
	out := make([]PoolMember, 0, len(pk.members))
	for i, m := range pk.members {
		pm := PoolMember{Name: m.Name, State: "down", Addrs: m.Addrs, Weight: m.Weight, Zone: m.Zone, Check: "down"}
		if pk.alive[i] {
			pm.State, pm.Check = "ready", "up"
		}
		if v, ok := p.perBackend.Load(m.Name); ok {
			pm.Conns = int(v.(*atomic.Int64).Load())
		}
		if st, ok := p.checker.Status(m.Name); ok {
			pm.Health = &health.TargetStatus{Name: m.Name, Healthy: pk.alive[i], Check: &st}
		}
		out = append(out, pm)
	}
	return out
}

// PassthroughStats are pass-through mode's counters.
type PassthroughStats struct {
	Conns int `json:"conns"` // client connections open
}

// Stats returns the pass-through counters.
func (p *Passthrough) Stats() PassthroughStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PassthroughStats{Conns: len(p.open)}
}
