package balancer

import (
	"testing"

	"github.com/graftlb/graftlb/affinity"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/protocol"
)

// TestPickerErrors: a pool with no connected gateway is published as error
// pickers, and the pickers of a connected pool say why they find none.
func TestPickerErrors(t *testing.T) {
	_, bs := testBackends(t, gw("a", "orders@1"), gw("b", "orders@1"))
	scratch := &pickScratch{}
	empty, _ := buildSnapshot(nil, nil, testRouting)
	for _, b := range bs {
		b.up.Store(false)
	}
	down, _ := buildSnapshot(bs, nil, testRouting)
	for name, pk := range map[string]*snapshot{"no gateways": empty, "none connected": down} {
		for kind, pi := range map[string]picker{"stateless": pk.stateless, "sessions": pk.sessions} {
			if _, err := pi.Pick(pickInfo{module: []byte("orders@1"), fresh: true, scratch: scratch}); err != errEmptyPool {
				t.Errorf("%s: %s picker: %v, want errEmptyPool", name, kind, err)
			}
		}
	}
	for _, b := range bs {
		b.up.Store(true)
	}
	bs[0].draining.Store(true)
	bs[1].draining.Store(true)
	pk, _ := buildSnapshot(bs, nil, testRouting)
	tests := []struct {
		name   string
		pi     picker
		module string
		want   error
	}{
		{"stateless, unknown module", pk.stateless, "nope@1", errUnknownModule},
		{"stateless, all draining", pk.stateless, "orders@1", errNoGateway},
		{"new session, unknown module", pk.sessions, "nope@1", errUnknownModule},
		{"new session, all draining", pk.sessions, "orders@1", errNoGateway},
	}
	for _, tt := range tests {
		if _, err := tt.pi.Pick(pickInfo{module: []byte(tt.module), key: 7, fresh: true, scratch: scratch}); err != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

// TestSnapshotFoldsHealth: what a pick sees of a gateway's health is what
// it was when the snapshot was built; the next snapshot sees the change.
// A draining gateway failing its checks is not failing: it is busy.
func TestSnapshotFoldsHealth(t *testing.T) {
	_, bs := testBackends(t, gw("a", "orders@1"), gw("b", "orders@1"))
	pk, _ := buildSnapshot(bs, nil, testRouting)
	bs[0].checkUp.Store(false)
	if pk.fails(bs[0]) {
		t.Fatal("a built snapshot changed with a gateway's health")
	}
	for range 50 {
		if got := pickStateless(pk, []byte("orders@1"), bs[1]); got != bs[0] {
			t.Fatalf("the built snapshot picked %v, want a (skipping b)", got)
		}
	}
	next, _ := buildSnapshot(bs, pk, testRouting)
	if !next.fails(bs[0]) || next.fails(bs[1]) {
		t.Fatal("the next snapshot does not say a fails its checks")
	}
	for range 50 {
		if got := pickStateless(next, []byte("orders@1"), bs[1]); got != bs[1] {
			t.Fatalf("the next snapshot picked %v, want b only", got)
		}
	}
	bs[0].draining.Store(true)
	if drained, _ := buildSnapshot(bs, next, testRouting); drained.fails(bs[0]) {
		t.Error("a draining gateway counts as failing")
	}
}

// TestBoundedLoadPlacement: with SessionLoadBound a new session skips the
// gateways of its preference list that hold too many sessions; a session
// being looked up still walks the list from its head, and without the
// bound the first admitting gateway takes it whatever its load.
func TestBoundedLoadPlacement(t *testing.T) {
	_, bs := testBackends(t, gw("a"), gw("b"), gw("c"))
	plain, _ := buildSnapshot(bs, nil, testRouting)
	bounded, _ := buildSnapshot(bs, nil, routing{panicThreshold: 0.5, maxOwnerProbes: 8, loadBound: 0.25})
	if _, ok := bounded.sessions.(boundedLoad); !ok {
		t.Fatalf("sessions picker with a load bound is %T, want boundedLoad", bounded.sessions)
	}
	if _, ok := plain.sessions.(preferenceWalk); !ok {
		t.Fatalf("sessions picker without a load bound is %T, want preferenceWalk", plain.sessions)
	}
	key := affinity.HashSession(protocol.NewSessionID())
	first := nextOwner(plain, key, []byte("orders@1"), true, nil, 8)
	first.sessions.Store(30) // the others hold none: the cap is ceil(1.25 × 31/3) = 13
	in := pickInfo{module: []byte("orders@1"), key: key, fresh: true, scratch: &pickScratch{}}
	if pc, err := plain.sessions.Pick(in); err != nil || pc.b != first {
		t.Errorf("plain: %v (%v), want %s", nameOf(pc.b), err, first.name)
	}
	if pc, err := bounded.sessions.Pick(in); err != nil || pc.b == first {
		t.Errorf("bounded: %v (%v), want another gateway than full %s", nameOf(pc.b), err, first.name)
	}
	in.fresh = false
	if pc, err := bounded.sessions.Pick(in); err != nil || pc.b != first {
		t.Errorf("bounded lookup: %v (%v), want the head of the list %s", nameOf(pc.b), err, first.name)
	}
	for _, b := range bs {
		b.sessions.Store(1)
	}
	in.fresh = true
	if pc, err := bounded.sessions.Pick(in); err != nil || pc.b != first {
		t.Errorf("bounded, balanced pool: %v (%v), want %s", nameOf(pc.b), err, first.name)
	}
}

// TestSessionLoadBoundThroughProxy: through a proxy with a tight load
// bound, new sessions (carts) spread so that no gateway holds more than
// ceil((1+ε) × mean) of them, whatever their ids hash to; each cart still
// reads back from its owner.
func TestSessionLoadBoundThroughProxy(t *testing.T) {
	gs := startGateways(t, 3, nil)
	p := startProxy(t, gs, func(c *Config) { c.SessionLoadBound = 0.01 })
	ctx := testCtx(t)
	c := dialProxy(t, proxyTargets(p)["tcp"])
	const carts = 30
	for i := range carts {
		obj, err := c.NewSession().New(ctx, "cart@1", "Cart")
		if err != nil {
			t.Fatalf("cart %d: %v", i, err)
		}
		if _, err := obj.Call(ctx, "AddItem", "pen", int64(i)); err != nil {
			t.Fatalf("cart %d: AddItem: %v", i, err)
		}
		r, err := obj.Call(ctx, "Total")
		var tot cart.TotalResult
		if err != nil || r.Decode(&tot) != nil || tot.Total != int64(i) {
			t.Fatalf("cart %d: total %+v (%v), want %d", i, tot, err, i)
		}
	}
	held := map[string]int64{}
	var total int64
	for _, m := range p.Pool() {
		held[m.Name] = m.Sessions
		total += m.Sessions
	}
	// carts sessions plus the connection's own, which holds nothing.
	if total != carts {
		t.Fatalf("sessions held %v (total %d), want %d", held, total, carts)
	}
	for name, n := range held {
		if n > 11 { // ceil(1.01 × 30/3)
			t.Errorf("gateway %s holds %d sessions (%v), want at most 11", name, n, held)
		}
	}
}

func nameOf(b *backend) string {
	if b == nil {
		return "none"
	}
	return b.name
}
