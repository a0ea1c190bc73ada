package balancer

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/discovery"
)

// TestReload: a reload changes the limits, health and routing settings of
// a running proxy, keeps (and names) the settings that cannot change, and
// refuses an invalid config whole; a connection open across the reloads
// keeps working.
func TestReload(t *testing.T) {
	gs := startGateways(t, 2, nil)
	p := startProxy(t, gs, nil)
	c := dialProxy(t, proxyTargets(p)["tcp"])
	s, cart, _ := cartOwner(t, c)

	next := p.Config()
	next.MaxSessions = 1234
	next.CallTimeout = 3 * time.Second
	next.Health.Check.Fall = 7
	next.Health.Outlier.ConsecutiveFailures = 9
	next.Health.Breaker.MaxConcurrent = 77
	next.Health.PanicThreshold = 0.25
	next.MaxModuleCalls = 5
	next.Name = "renamed"
	next.TCP = "127.0.0.1:1"
	next.Auth.TokensFile = "/nonexistent/tokens" // credentials are read at start only
	kept, err := p.Reload(next)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(kept, []string{"tcp", "name", "auth"}) {
		t.Errorf("kept %v, want [tcp name auth]", kept)
	}
	if !p.modLimit.on() || p.modLimit.max.Load() != 5 || p.Config().Auth.TokensFile != "" {
		t.Errorf("after the reload: module cap on %v (%d), auth tokens %q", p.modLimit.on(), p.modLimit.max.Load(), p.Config().Auth.TokensFile)
	}
	got := p.Config()
	if got.MaxSessions != 1234 || got.CallTimeout != 3*time.Second || got.Name != "graftlb" || got.TCP != "127.0.0.1:0" {
		t.Errorf("config after the reload: max_sessions %d, call_timeout %v, name %q, tcp %q", got.MaxSessions, got.CallTimeout, got.Name, got.TCP)
	}
	if p.sessions.max.Load() != 1234 || p.checker.Config().Fall != 7 || p.detector.Config().ConsecutiveFailures != 9 {
		t.Errorf("not handed on: table cap %d, fall %d, consecutive %d", p.sessions.max.Load(), p.checker.Config().Fall, p.detector.Config().ConsecutiveFailures)
	}
	p.mu.Lock()
	for _, b := range p.backends {
		if m := b.breaker.Settings().MaxConcurrent; m != 77 {
			t.Errorf("%s: breaker max_concurrent %d, want 77", b.name, m)
		}
	}
	p.mu.Unlock()
	if r := routingOf(*p.conf()); r.panicThreshold != 0.25 {
		t.Errorf("routing panic threshold %v", r.panicThreshold)
	}

	bad := p.Config()
	bad.MaxSessions = 99
	bad.RetryBudget = 2
	if _, err := p.Reload(bad); err == nil {
		t.Fatal("a retry budget of 2 was taken")
	}
	if got := p.Config(); got.MaxSessions != 1234 {
		t.Errorf("a refused reload changed max_sessions to %d", got.MaxSessions)
	}
	if _, err := cart.Call(testCtx(t), "Total"); err != nil {
		t.Fatalf("the cart after the reloads: %v", err)
	}
	if _, err := s.CallStateless(testCtx(t), "orders@1.Orders.GetOrder", "o-1"); err != nil {
		t.Fatalf("a stateless call after the reloads: %v", err)
	}
}

// TestReloadConnLimits: lowering max_conns refuses new connections and
// keeps the open ones; raising it admits them again.
func TestReloadConnLimits(t *testing.T) {
	gs := startGateways(t, 1, nil)
	p := startProxy(t, gs, nil)
	c1 := dialProxy(t, proxyTargets(p)["tcp"])
	next := p.Config()
	next.MaxConns = 1
	if _, err := p.Reload(next); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c2, err := client.Dial(ctx, proxyTargets(p)["tcp"], client.Options{}); err == nil {
		_ = c2.Close()
		t.Fatal("a second connection under max_conns 1 was admitted")
	}
	if _, err := c1.Session().CallStateless(testCtx(t), "orders@1.Orders.GetOrder", "o-1"); err != nil {
		t.Fatalf("the open connection after max_conns 1: %v", err)
	}
	next.MaxConns = 10
	if _, err := p.Reload(next); err != nil {
		t.Fatal(err)
	}
	dialProxy(t, proxyTargets(p)["tcp"])
}

// TestRetire: a retired gateway takes no new session or stateless call,
// and Retire returns once its calls in flight are over.
func TestRetire(t *testing.T) {
	gs := startGateways(t, 2, nil)
	src := discovery.NewStatic([]discovery.Member{member(gs[0]), member(gs[1])})
	p, err := New(Config{TCP: "127.0.0.1:0", WS: "", PoolSettle: -1}, src)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := dialProxy(t, "tcp://"+p.Addrs().TCP)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.Retire(ctx, []string{"gw1", "nosuch"})
	if ctx.Err() != nil {
		t.Fatal("Retire did not return before its deadline")
	}
	for i := 0; i < 10; i++ {
		if _, _, owner := cartOwner(t, c); owner != "gw2" {
			t.Fatalf("a new session on %s after gw1 retired", owner)
		}
	}
	src.Set([]discovery.Member{member(gs[1])})
	waitPool(t, p, 1)
}

func waitPool(t *testing.T, p *Proxy, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(p.Pool()) != n {
		if time.Now().After(deadline) {
			t.Fatalf("pool %d gateways, want %d", len(p.Pool()), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
