package balancer

import (
	"testing"

	"github.com/graftlb/graftlb/affinity"
	"github.com/graftlb/graftlb/discovery"
	"github.com/graftlb/graftlb/protocol"
)

// testBackends returns connected-looking backends for picker tests.
func testBackends(t *testing.T, members ...discovery.Member) (*Proxy, []*backend) {
	t.Helper()
	p, err := New(Config{TCP: "127.0.0.1:0"}, discovery.NewStatic(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	var bs []*backend
	for _, m := range members {
		if m.Weight == 0 {
			m.Weight = 1
		}
		b := newBackend(p, m)
		b.up.Store(true)
		bs = append(bs, b)
	}
	return p, bs
}

// testRouting is the default routing: P2C and the plain preference walk.
var testRouting = routing{panicThreshold: 0.5, maxOwnerProbes: 8}

// pickStateless is the stateless picker's choice, nil when it finds none.
func pickStateless(pk *snapshot, module []byte, skip *backend) *backend {
	pc, _ := pk.stateless.Pick(pickInfo{module: module, skip: skip})
	return pc.b
}

// nextOwner is the choice of a preference walk bounded by limit (the
// session picker of testRouting when limit is 8), nil when it finds none.
func nextOwner(pk *snapshot, key uint64, module []byte, fresh bool, tried []*backend, limit int) *backend {
	pc, _ := preferenceWalk{pk: pk, limit: limit}.Pick(pickInfo{module: module, key: key, fresh: fresh, tried: tried, scratch: &pickScratch{}})
	return pc.b
}

func gw(name string, modules ...string) discovery.Member {
	return discovery.Member{Name: name, Role: discovery.RoleGateway, Modules: modules, Addrs: discovery.Addrs{TCP: "127.0.0.1:1"}}
}

func TestPickStatelessSpreadsAndPrefersIdle(t *testing.T) {
	_, bs := testBackends(t, gw("a", "orders@1"), gw("b", "orders@1"), gw("c", "orders@1"), gw("d", "cart@1"))
	pk, err := buildSnapshot(bs, nil, testRouting)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for i := 0; i < 30000; i++ {
		counts[pickStateless(pk, []byte("orders@1"), nil).name]++
	}
	for _, n := range []string{"a", "b", "c"} {
		if counts[n] < 9000 || counts[n] > 11000 {
			t.Errorf("idle pool: %s got %d of 30000 picks, want about a third", n, counts[n])
		}
	}
	if counts["d"] != 0 {
		t.Errorf("d does not serve orders@1 but got %d picks", counts["d"])
	}
	// A backend with many calls outstanding is never the less loaded of two.
	bs[0].outstanding.Store(100)
	counts = map[string]int{}
	for i := 0; i < 3000; i++ {
		counts[pickStateless(pk, []byte("orders@1"), nil).name]++
	}
	if counts["a"] != 0 {
		t.Errorf("busy backend a picked %d times", counts["a"])
	}
	// skip avoids a backend when another exists.
	for i := 0; i < 100; i++ {
		if pickStateless(pk, []byte("orders@1"), bs[1]) == bs[1] {
			t.Fatal("the stateless picker returned the backend to skip")
		}
	}
	if got := pickStateless(pk, []byte("nope@1"), nil); got != nil {
		t.Errorf("unknown module picked %s", got.name)
	}
}

func TestPickStatelessWeights(t *testing.T) {
	heavy := gw("heavy", "orders@1")
	heavy.Weight = 3
	_, bs := testBackends(t, heavy, gw("light", "orders@1"))
	pk, _ := buildSnapshot(bs, nil, testRouting)
	// Simulate load: each pick adds an outstanding call that never ends,
	// so the shares follow the weights.
	counts := map[string]int{}
	for i := 0; i < 4000; i++ {
		b := pickStateless(pk, []byte("orders@1"), nil)
		b.outstanding.Add(1)
		counts[b.name]++
	}
	if r := float64(counts["heavy"]) / float64(counts["light"]); r < 2.8 || r > 3.2 {
		t.Errorf("heavy/light = %.2f (%v), want about 3", r, counts)
	}
}

func TestNextOwnerEligibility(t *testing.T) {
	_, bs := testBackends(t, gw("a"), gw("b"), gw("c"), gw("d"))
	key := affinity.HashSession(protocol.NewSessionID())
	pk, _ := buildSnapshot(bs, nil, testRouting)
	first := nextOwner(pk, key, []byte("orders@1"), true, nil, 8)
	if first == nil {
		t.Fatal("no owner")
	}
	// Drain the first choice: a new session goes to the next in its list;
	// a resumed one may still be held there.
	first.draining.Store(true)
	pk2, _ := buildSnapshot(bs, pk, testRouting)
	if pk2.table != pk.table {
		t.Error("table rebuilt although the member set did not change")
	}
	second := nextOwner(pk2, key, []byte("orders@1"), true, nil, 8)
	if second == nil || second == first {
		t.Fatalf("new session placed on %v, want another than draining %s", second, first.name)
	}
	if got := nextOwner(pk2, key, []byte("orders@1"), false, nil, 8); got != first {
		t.Errorf("resumed session looked up on %v, want draining holder %s", got, first.name)
	}
	// tried skips; the limit bounds the walk.
	if got := nextOwner(pk2, key, []byte("orders@1"), true, []*backend{second}, 8); got == nil || got == first || got == second {
		t.Errorf("third choice = %v", got)
	}
	if got := nextOwner(pk2, key, []byte("orders@1"), true, []*backend{second}, 1); got != nil {
		t.Errorf("walk past the limit returned %s", got.name)
	}
	// Same member set, same owner, whatever the build order.
	rev := []*backend{bs[0], bs[1], bs[2], bs[3]}
	pk3, _ := buildSnapshot(rev, nil, testRouting)
	if got := nextOwner(pk3, key, nil, false, nil, 8); got != first {
		t.Errorf("owner differs across builds: %v vs %s", got, first.name)
	}
}

func TestNextOwnerModuleFilter(t *testing.T) {
	_, bs := testBackends(t, gw("a", "cart@1"), gw("b", "orders@1"), gw("c", "cart@1", "orders@1"))
	pk, _ := buildSnapshot(bs, nil, testRouting)
	for i := 0; i < 200; i++ {
		key := affinity.HashSession(protocol.NewSessionID())
		got := nextOwner(pk, key, []byte("cart@1"), true, nil, 8)
		if got == nil || got.name == "b" {
			t.Fatalf("cart session placed on %v", got)
		}
	}
	if got := nextOwner(pk, 1, []byte("ticker@1"), true, nil, 8); got != nil {
		t.Errorf("module nobody serves placed on %s", got.name)
	}
}

// TestLatencyEstimateRecovers: a gateway whose first calls were slow (a
// cold start) is not starved: once idle its estimate decays, and a rare
// fast sample does not bring the old estimate back.
func TestLatencyEstimateRecovers(t *testing.T) {
	_, bs := testBackends(t, gw("cold", "orders@1"), gw("warm", "orders@1"))
	cold, warm := bs[0], bs[1]
	now := int64(1e12)
	cold.observe(3e6, now)   // 3 ms on a cold connection
	warm.observe(200e3, now) // 200 µs
	if cold.cost(now) <= warm.cost(now) {
		t.Fatal("a slower gateway costs no more")
	}
	// The warm gateway keeps answering in 200 µs; the cold one idles 3 s,
	// 6 half-lives, which take its 3 ms under 200 µs.
	later := now + 3e9
	for ts := now; ts <= later; ts += 10e6 {
		warm.observe(200e3, ts)
	}
	if cold.cost(later) >= warm.cost(later) {
		t.Errorf("after 3s idle the cold gateway still costs %.0f against %.0f", cold.cost(later), warm.cost(later))
	}
	// Its next (fast) sample starts from the decayed estimate.
	cold.observe(200e3, later)
	if e := cold.ewma.Load(); e > 300e3 {
		t.Errorf("estimate after a fast sample is %dns: the old 3ms came back", e)
	}
}
