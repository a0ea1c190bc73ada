package discovery

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

var (
	testKey  = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	otherKey = base64.StdEncoding.EncodeToString([]byte("fedcba9876543210"))
)

// converge is how long a test waits for gossip; the LAN profile needs well
// under a second on loopback, the race detector and a busy machine more.
const converge = 20 * time.Second

type testNode struct {
	*Gossip
	logs *logBuffer
}

// startNode starts a member on 127.0.0.1, port 0, with the test key. Its
// gateways advertise a TCP address derived from the name; mutate may change
// the config. The node is shut down at cleanup.
func startNode(tb testing.TB, name string, role Role, join []string, mutate func(*Config)) *testNode {
	tb.Helper()
	logs := &logBuffer{}
	cfg := Config{
		Local: Member{
			Name:    name,
			Role:    role,
			Addrs:   Addrs{TCP: "127.0.0.1:" + fmt.Sprint(9000+len(name)), WS: "127.0.0.1:8888"},
			Modules: []string{"orders@1", "cart@1"},
			Zone:    "z1",
		},
		BindAddr: "127.0.0.1:0",
		Join:     join,
		Key:      testKey,
		Logger:   ptr(zerolog.New(logs).Level(zerolog.DebugLevel)),
	}
	if role == RoleProxy {
		cfg.Local.Modules = nil
	}
	if mutate != nil {
		mutate(&cfg)
	}
	g, err := NewGossip(cfg)
	if err != nil {
		tb.Fatalf("NewGossip %s: %v", name, err)
	}
	if err := g.Start(); err != nil {
		tb.Fatalf("Start %s: %v", name, err)
	}
	tb.Cleanup(func() { _ = g.Shutdown() })
	return &testNode{Gossip: g, logs: logs}
}

// sees reports whether every node's snapshot holds exactly want.
func allSee(nodes []*testNode, want []Member) bool {
	for _, n := range nodes {
		if !slices.EqualFunc(n.Members(), want, Member.Equal) {
			return false
		}
	}
	return true
}

func locals(nodes ...*testNode) []Member {
	ms := make([]Member, 0, len(nodes))
	for _, n := range nodes {
		ms = append(ms, n.Local())
	}
	return NewSnapshot(1, ms).Members()
}

func memberNamed(n *testNode, name string) (Member, bool) { return n.Snapshot().Lookup(name) }

func TestGossipCluster(t *testing.T) {
	awaitMemberlistExit(t)
	gw1 := startNode(t, "gw1", RoleGateway, nil, nil)
	seed := []string{gw1.LocalAddr()}
	if !strings.HasPrefix(seed[0], "127.0.0.1:") || strings.HasSuffix(seed[0], ":0") {
		t.Fatalf("LocalAddr = %q, want the bound port", seed[0])
	}
	nodes := []*testNode{gw1}
	for _, spec := range []struct {
		name string
		role Role
	}{{"gw2", RoleGateway}, {"gw3", RoleGateway}, {"px1", RoleProxy}} {
		start := time.Now()
		n := startNode(t, spec.name, spec.role, seed, nil)
		started := time.Since(start)
		nodes = append(nodes, n)
		// Joined when every earlier member sees it; the seed learns of it
		// during Start's push/pull, the others by gossip from the seed.
		all := waitFor(t, converge, spec.name+" seen by all", func() bool {
			for _, o := range nodes {
				if _, ok := memberNamed(o, spec.name); !ok {
					return false
				}
			}
			return true
		})
		t.Logf("join of %s: Start (bind + push/pull with the seed) %v, then seen by all %d members %v later, total %v",
			spec.name, started.Round(time.Microsecond), len(nodes), all.Round(time.Microsecond), (started + all).Round(time.Microsecond))
	}

	took := waitFor(t, converge, "4 members converge", func() bool { return allSee(nodes, locals(nodes...)) })
	t.Logf("4 members agree on the full metadata %v after the last join", took)
	want := locals(nodes...)
	gw2, _ := px(nodes).Snapshot().Lookup("gw2")
	if gw2.Role != RoleGateway || gw2.Addrs.TCP != "127.0.0.1:9003" || !slices.Equal(gw2.Modules, []string{"cart@1", "orders@1"}) ||
		gw2.Zone != "z1" || gw2.Instance == 0 || gw2.Addrs.Gossip != nodes[1].LocalAddr() {
		t.Fatalf("gw2 as px1 sees it: %+v", gw2)
	}
	if len(px(nodes).Snapshot().Gateways()) != 3 || len(want) != 4 {
		t.Fatalf("px1 sees gateways %+v", px(nodes).Snapshot().Gateways())
	}

	t.Run("two proxies see identical gateway sets", func(t *testing.T) {
		px2 := startNode(t, "px2", RoleProxy, []string{nodes[2].LocalAddr()}, nil)
		all := append(slices.Clone(nodes), px2)
		waitFor(t, converge, "5 members converge", func() bool { return allSee(all, locals(all...)) })
		a, b := px(nodes).Snapshot().Gateways(), px2.Snapshot().Gateways()
		if !slices.EqualFunc(a, b, Member.Equal) || len(a) != 3 {
			t.Fatalf("px1 sees %+v\npx2 sees %+v", a, b)
		}
		start := time.Now()
		if err := px2.Leave(time.Second); err != nil {
			t.Fatal(err)
		}
		_ = px2.Shutdown()
		waitFor(t, converge, "px2 gone", func() bool { return allSee(nodes, want) })
		t.Logf("a leave is seen by every member in %v", time.Since(start))
	})

	t.Run("draining is gossiped", func(t *testing.T) {
		g := nodes[1]
		if err := g.SetState(StateDraining); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		waitFor(t, converge, "gw2 draining everywhere", func() bool {
			for _, n := range nodes {
				if m, ok := memberNamed(n, "gw2"); !ok || m.State != StateDraining {
					return false
				}
			}
			return true
		})
		t.Logf("SetState(Draining) seen by every member in %v after it returned", time.Since(start))
		if g.Local().State != StateDraining {
			t.Fatal("Local() not draining")
		}
	})

	t.Run("leave removes the member", func(t *testing.T) {
		gw3 := nodes[2]
		if err := gw3.Leave(time.Second); err != nil {
			t.Fatal(err)
		}
		if err := gw3.Leave(time.Second); err != nil {
			t.Fatalf("second Leave: %v", err)
		}
		if err := gw3.SetState(StateReady); err == nil {
			t.Fatal("SetState after Leave succeeded")
		}
		if err := gw3.Shutdown(); err != nil {
			t.Fatal(err)
		}
		rest := []*testNode{nodes[0], nodes[1], nodes[3]}
		waitFor(t, converge, "gw3 gone", func() bool {
			for _, n := range rest {
				if _, ok := memberNamed(n, "gw3"); ok || n.Snapshot().Len() != 3 {
					return false
				}
			}
			return true
		})
		if _, ok := <-gw3.Updates(); ok {
			// drain the last buffered snapshot; the channel must then be closed
			if _, ok := <-gw3.Updates(); ok {
				t.Fatal("Updates open after Shutdown")
			}
		}
	})
}

func px(nodes []*testNode) *testNode {
	for _, n := range nodes {
		if n.Local().Role == RoleProxy {
			return n
		}
	}
	panic("no proxy")
}

func TestGossipRestartIsNewInstance(t *testing.T) {
	awaitMemberlistExit(t)
	seed := startNode(t, "px1", RoleProxy, nil, nil)
	join := []string{seed.LocalAddr()}
	old := startNode(t, "gw1", RoleGateway, join, nil)
	first := waitForMember(t, seed, "gw1")
	if first.Instance != old.Local().Instance {
		t.Fatalf("seed sees instance %v, gw1 says %v", first.Instance, old.Local().Instance)
	}
	if err := old.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	_ = old.Shutdown()
	waitFor(t, converge, "gw1 gone", func() bool { _, ok := memberNamed(seed, "gw1"); return !ok })

	restarted := startNode(t, "gw1", RoleGateway, join, nil)
	var second Member
	waitFor(t, converge, "gw1 back", func() bool {
		var ok bool
		second, ok = memberNamed(seed, "gw1")
		return ok
	})
	if second.Instance == first.Instance || second.Instance != restarted.Local().Instance {
		t.Fatalf("restarted gw1 has instance %v, the old one had %v", second.Instance, first.Instance)
	}
	if second.Addrs.Gossip == first.Addrs.Gossip {
		t.Logf("note: the restart reused gossip address %s", second.Addrs.Gossip)
	}
}

func waitForMember(tb testing.TB, n *testNode, name string) Member {
	tb.Helper()
	var m Member
	waitFor(tb, converge, n.Local().Name+" to see "+name, func() bool {
		var ok bool
		m, ok = memberNamed(n, name)
		return ok
	})
	return m
}

func TestGossipRefusesStrangers(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		reason string
	}{
		{"wrong key", func(c *Config) { c.Key = otherKey }, "wrong gossip key"},
		{"no key", func(c *Config) { c.Key = "" }, "peer has no gossip key"},
		{"wrong label", func(c *Config) { c.Label = "other-cluster" }, "wrong cluster label"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			awaitMemberlistExit(t)
			gw1 := startNode(t, "gw1", RoleGateway, nil, nil)
			join := []string{gw1.LocalAddr()}
			px1 := startNode(t, "px1", RoleProxy, join, nil)
			members := []*testNode{gw1, px1}
			waitFor(t, converge, "cluster", func() bool { return allSee(members, locals(members...)) })

			stranger := startNode(t, "intruder", RoleGateway, join, func(c *Config) {
				tt.mutate(c)
				c.JoinRetry = 50 * time.Millisecond // keep knocking
			})
			var refusal map[string]any
			waitFor(t, converge, "refusal logged by gw1", func() bool {
				var ok bool
				refusal, ok = gw1.logs.find(map[string]string{
					"level": "warn", "reason": tt.reason, "message": "discovery: refused a gossip peer",
				})
				return ok
			})
			t.Logf("gw1 logged: %v", refusal)
			var failed map[string]any
			waitFor(t, converge, "the intruder logs its failed join", func() bool {
				var ok bool
				failed, ok = stranger.logs.find(map[string]string{"level": "warn", "message": "discovery: no gossip seed answered"})
				return ok
			})
			t.Logf("the intruder logged: %v", failed)
			for _, n := range members {
				if _, ok := memberNamed(n, "intruder"); ok || n.Snapshot().Len() != 2 {
					t.Fatalf("%s admitted the intruder: %+v", n.Local().Name, n.Members())
				}
			}
			if s := stranger.Snapshot(); s.Len() != 1 {
				t.Fatalf("the intruder sees %+v", s.Members())
			}
		})
	}
}

func TestGossipConfigErrors(t *testing.T) {
	good := Config{Local: Member{Name: "n", Role: RoleGateway}, BindAddr: "127.0.0.1:0"}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"key not base64", func(c *Config) { c.Key = "not base64!" }, "base64"},
		{"key length", func(c *Config) { c.Key = base64.StdEncoding.EncodeToString(make([]byte, 20)) }, "20 bytes"},
		{"bind host not a name", func(c *Config) { c.BindAddr = "bad_host!:0" }, "bind_addr"},
		{"bind port", func(c *Config) { c.BindAddr = "127.0.0.1:70000" }, "bind_addr"},
		{"advertise port 0", func(c *Config) { c.AdvertiseAddr = "10.0.0.1:0" }, "advertise_addr"},
		{"advertise wildcard", func(c *Config) { c.AdvertiseAddr = "0.0.0.0" }, "wildcard"},
		{"advertise empty host", func(c *Config) { c.AdvertiseAddr = ":7946" }, "advertise_addr"},
		{"join", func(c *Config) { c.Join = []string{"nohost"} }, "join"},
		{"no role", func(c *Config) { c.Local.Role = 0 }, "local: role"},
		{"metadata too large", func(c *Config) {
			c.Local.Zone = strings.Repeat("z", 255)
			c.Local.Modules = []string{strings.Repeat("m", 255)}
		}, "512-byte"},
		{"label", func(c *Config) { c.Label = strings.Repeat("l", 256) }, "label"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mutate(&c)
			_, err := NewGossip(c)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "discovery: ") {
				t.Fatalf("NewGossip error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := NewGossip(good); err != nil {
		t.Fatal(err)
	}
	t.Setenv(KeyEnv, testKey)
	if c := DefaultConfig(); c.Key != testKey || c.Label != DefaultLabel || c.BindAddr != "0.0.0.0:7946" || c.Local.Role != RoleGateway {
		t.Fatalf("DefaultConfig = %+v", c)
	}
}

func TestGossipLifecycleErrors(t *testing.T) {
	awaitMemberlistExit(t)
	g, err := NewGossip(Config{Local: Member{Name: "n", Role: RoleGateway}, BindAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Leave(time.Second); err == nil {
		t.Error("Leave before Start succeeded")
	}
	if _, err := g.Join("127.0.0.1:1"); err == nil {
		t.Error("Join before Start succeeded")
	}
	if err := g.SetState(StateDraining); err != nil {
		t.Errorf("SetState before Start: %v", err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err == nil {
		t.Error("second Start succeeded")
	}
	if m, ok := g.Snapshot().Lookup("n"); !ok || m.State != StateDraining {
		t.Errorf("a state set before Start is not announced: %+v", m)
	}
	if _, err := g.Join("127.0.0.1:1"); err == nil {
		t.Error("Join of a closed port succeeded")
	}
	if err := g.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := g.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if err := g.Leave(time.Second); err == nil {
		t.Error("Leave after Shutdown succeeded")
	}
}

func TestGossipDeadMemberDisappears(t *testing.T) {
	awaitMemberlistExit(t)
	gw1 := startNode(t, "gw1", RoleGateway, nil, nil)
	join := []string{gw1.LocalAddr()}
	px1 := startNode(t, "px1", RoleProxy, join, nil)
	gw2 := startNode(t, "gw2", RoleGateway, join, nil)
	all := []*testNode{gw1, px1, gw2}
	waitFor(t, converge, "cluster", func() bool { return allSee(all, locals(all...)) })

	// Shutdown without Leave: to the others gw2 just stops answering.
	if err := gw2.Shutdown(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rest := []*testNode{gw1, px1}
	waitFor(t, 60*time.Second, "gw2 declared dead", func() bool { return allSee(rest, locals(rest...)) })
	t.Logf("a silent member is dropped by every member after %v (LAN profile, 3 members)", time.Since(start).Round(time.Millisecond))
}

// TestGossipCrashRestartOnNewPort restarts a killed gateway under its name
// on another port (port 0, or a new pod IP), while the others still hold
// its old run as alive: memberlist refuses the new one as a name conflict
// until the old one is declared dead (6–10 s), and on its own offers it
// again only at the next push/pull (measured: 32–60 s in all). joinLoop's
// re-joins bring that down to failure detection plus about JoinRetry.
func TestGossipCrashRestartOnNewPort(t *testing.T) {
	awaitMemberlistExit(t)
	seed := startNode(t, "px1", RoleProxy, nil, nil)
	join := []string{seed.LocalAddr()}
	gw1 := startNode(t, "gw1", RoleGateway, join, nil)
	old := startNode(t, "gw2", RoleGateway, join, nil)
	oldID := old.Local().Instance
	for _, n := range []*testNode{seed, gw1} {
		if m := waitForMember(t, n, "gw2"); m.Instance != oldID {
			t.Fatalf("%s sees gw2 instance %v", n.Local().Name, m.Instance)
		}
	}
	_ = old.Shutdown() // a crash: no Leave
	start := time.Now()
	restarted := startNode(t, "gw2", RoleGateway, join, nil)
	for _, n := range []*testNode{seed, gw1, restarted} {
		waitFor(t, 25*time.Second, n.Local().Name+" to see the new gw2", func() bool {
			m, ok := memberNamed(n, "gw2")
			return ok && m.Instance == restarted.Local().Instance && m.Addrs.Gossip == restarted.LocalAddr()
		})
	}
	t.Logf("a crashed gw2 restarted on a new port is seen as the new instance by every member after %v",
		time.Since(start).Round(time.Millisecond))
}

// TestGossipJoinLatency measures how long a join takes to show up in every
// member's snapshot, counted from the call to Start, for a growing cluster.
func TestGossipJoinLatency(t *testing.T) {
	awaitMemberlistExit(t)
	nodes := []*testNode{startNode(t, "gw00", RoleGateway, nil, nil)}
	seed := []string{nodes[0].LocalAddr()}
	var seedSaw, allSaw []time.Duration
	for i := 1; i <= 8; i++ {
		name := fmt.Sprintf("gw%02d", i)
		start := time.Now()
		nodes = append(nodes, startNode(t, name, RoleGateway, seed, nil))
		waitFor(t, converge, "the seed to see "+name, func() bool { _, ok := memberNamed(nodes[0], name); return ok })
		seedSaw = append(seedSaw, time.Since(start))
		waitFor(t, converge, "all to see "+name, func() bool {
			for _, n := range nodes {
				if _, ok := memberNamed(n, name); !ok {
					return false
				}
			}
			return true
		})
		allSaw = append(allSaw, time.Since(start))
	}
	stats := func(ds []time.Duration) string {
		s := slices.Clone(ds)
		slices.Sort(s)
		return fmt.Sprintf("min %v, median %v, max %v", s[0].Round(time.Millisecond/10),
			s[len(s)/2].Round(time.Millisecond/10), s[len(s)-1].Round(time.Millisecond/10))
	}
	t.Logf("join seen by the seed: %s", stats(seedSaw))
	t.Logf("join seen by every member (cluster of 2..9): %s", stats(allSaw))
}

// TestGossipRestartOutlivesItsSeed is TestGossipCrashRestartOnNewPort when
// the seed the restarted member names dies too, before the others accept
// the new run (found by graftlb chaos: a proxy killed and restarted joined
// through a gateway that was drained next, and served a stale pool for
// 45 s). The restarted member settles the conflict through the members it
// learnt from its first join, not only through its seeds.
func TestGossipRestartOutlivesItsSeed(t *testing.T) {
	awaitMemberlistExit(t)
	seed := startNode(t, "gw0", RoleGateway, nil, nil)
	join := []string{seed.LocalAddr()}
	gw1 := startNode(t, "gw1", RoleGateway, join, nil)
	old := startNode(t, "px1", RoleProxy, join, nil)
	for _, n := range []*testNode{seed, gw1} {
		waitForMember(t, n, "px1")
	}
	_ = old.Shutdown() // a crash: no Leave
	restarted := startNode(t, "px1", RoleProxy, join, nil)
	waitForMember(t, restarted, "gw1")
	_ = seed.Shutdown() // the seed dies while gw1 still refuses the new px1
	start := time.Now()
	waitFor(t, 25*time.Second, "gw1 to see the new px1", func() bool {
		m, ok := memberNamed(gw1, "px1")
		return ok && m.Instance == restarted.Local().Instance && m.Addrs.Gossip == restarted.LocalAddr()
	})
	t.Logf("gw1 accepted the restarted px1 %v after its only seed died", time.Since(start).Round(time.Millisecond))
}
