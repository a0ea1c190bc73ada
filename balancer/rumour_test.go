package balancer

import (
	"sync"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/internal/proctest"
)

// setSource is a discovery source whose members the test sets, as gossip
// would publish them: one buffered slot, the latest snapshot wins.
type setSource struct {
	ch   chan discovery.Snapshot
	mu   sync.Mutex
	snap discovery.Snapshot
	once sync.Once
}

func newSetSource(ms []discovery.Member) *setSource {
	s := &setSource{ch: make(chan discovery.Snapshot, 1)}
	s.set(ms)
	return s
}

func (s *setSource) set(ms []discovery.Member) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snap = discovery.NewSnapshot(s.snap.Version()+1, ms)
	select {
	case <-s.ch:
	default:
	}
	s.ch <- s.snap
}

func (s *setSource) Updates() <-chan discovery.Snapshot { return s.ch }

func (s *setSource) Snapshot() discovery.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}

func (s *setSource) Close() error {
	s.once.Do(func() { close(s.ch) })
	return nil
}

// TestFalseDeathKeepsSessions (chaos, isolate-gateway): a member cut off
// from the others believes them dead, and once the cut heals its verdict
// reaches the pool before the victim refutes it. The proxy must not lose
// the sessions of a gateway whose connections never broke and that is back
// in the pool a moment later: the order is forced here, the gateway's
// leave applied (it is out of Pool) before it is listed again.
func TestFalseDeathKeepsSessions(t *testing.T) {
	gs := startGateways(t, 2, nil)
	ms := []discovery.Member{member(gs[0]), member(gs[1])}
	src := newSetSource(ms)
	p, err := New(Config{TCP: "127.0.0.1:0", WS: "127.0.0.1:0", PoolSettle: -1}, src)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	inPool := func(name string) bool {
		for _, m := range p.Pool() {
			if m.Name == name && m.State == "ready" {
				return true
			}
		}
		return false
	}
	proctest.Eventually(t, 10*time.Second, "both gateways ready", func() bool { return inPool("gw1") && inPool("gw2") })

	ctx := testCtx(t)
	c := dialProxy(t, proxyTargets(p)["tcp"])
	obj, err := c.NewSession().New(ctx, "cart@1", "Cart")
	if err != nil {
		t.Fatal(err)
	}
	a, err := client.Call[cart.Added](ctx, obj, "AddItem", "a", int64(1))
	if err != nil {
		t.Fatal(err)
	}
	var victim, other discovery.Member
	for _, m := range ms {
		if m.Name == a.Gateway {
			victim = m
		} else {
			other = m
		}
	}

	src.set([]discovery.Member{other}) // the rumour of its death
	proctest.Eventually(t, 5*time.Second, "the leave applied", func() bool {
		for _, m := range p.Pool() {
			if m.Name == victim.Name {
				return false
			}
		}
		return true
	})
	src.set(ms) // refuted
	proctest.Eventually(t, 5*time.Second, "the gateway back in the pool", func() bool { return inPool(victim.Name) })

	b, err := client.Call[cart.Added](ctx, obj, "AddItem", "b", int64(2))
	if err != nil {
		t.Fatalf("AddItem after a refuted death of %s: %v", victim.Name, err)
	}
	if b.Gateway != victim.Name || b.Items != 2 || b.Total != 3 {
		t.Fatalf("AddItem after a refuted death answered %+v, want 2 items (total 3) on %s", b, victim.Name)
	}
	if n := p.stats.sessionsLost.Load(); n != 0 {
		t.Fatalf("%d sessions lost for a death that was refuted", n)
	}
}
