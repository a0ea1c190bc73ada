package passthrough

import (
	"net"
	"sync"
	"sync/atomic"

	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/health"
)

// The admin views of pass-through mode (GET /pool, GET /stats), as
// balancer.Proxy has them: which backends are live and how many client
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
func (p *Proxy) forwarded(name string) *atomic.Int64 {
	v, _ := p.perBackend.LoadOrStore(name, new(atomic.Int64))
	n := v.(*atomic.Int64)
	n.Add(1)
	return n
}

// Backend is one backend as GET /pool shows it, with the fields of
// balancer.PoolMember that pass-through mode has.
type Backend struct {
	Name  string          `json:"name"`
	State string          `json:"state"` // ready (its liveness check passes) or down
	Addrs discovery.Addrs `json:"addrs"`
	// Weight is its share of the Maglev table; Zone its locality label.
	Weight int    `json:"weight"`
	Zone   string `json:"zone,omitempty"`
	// Conns counts the client connections forwarded to it now.
	Conns int `json:"conns"`
	// Check is the liveness check's verdict (up or down), and Health its
	// details: counts and last error.
	Check  string               `json:"check"`
	Health *health.TargetStatus `json:"health,omitempty"`
}

// Pool returns the backends, sorted by name.
func (p *Proxy) Pool() []Backend {
	s := p.snap.Load()
	out := make([]Backend, 0, len(s.members))
	for i, m := range s.members {
		b := Backend{Name: m.Name, State: "down", Addrs: m.Addrs, Weight: m.Weight, Zone: m.Zone, Check: "down"}
		if s.alive[i] {
			b.State, b.Check = "ready", "up"
		}
		if v, ok := p.perBackend.Load(m.Name); ok {
			b.Conns = int(v.(*atomic.Int64).Load())
		}
		if st, ok := p.checker.Status(m.Name); ok {
			b.Health = &health.TargetStatus{Name: m.Name, Healthy: s.alive[i], Check: &st}
		}
		out = append(out, b)
	}
	return out
}

// Stats are pass-through mode's counters.
type Stats struct {
	Conns int64 `json:"conns"` // client connections open
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	return Stats{Conns: p.admission.Conns()}
}
