package discovery

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/protocol"
)

// startGateway runs an embedded gateway, TCP only (the HTTP listeners'
// fasthttp goroutines would outlive it), hosting two small modules.
// Calls of hold@1.Hold.Wait block until release is closed.
func startGateway(t *testing.T, name string, release <-chan struct{}) *gateway.Gateway {
	t.Helper()
	cfg := gateway.DefaultConfig()
	cfg.Name = name
	cfg.TCP, cfg.WS, cfg.HTTP = "127.0.0.1:0", "", ""
	cfg.DrainQuiet = 50 * time.Millisecond
	cfg.Modules = []*gateway.Module{
		gateway.NewModule("hold", "1").Func("Hold", "Wait", func() { <-release }, gateway.Stateless()),
		gateway.NewModule("echo", "2").Func("Echo", "Echo", func(s string) string { return s }, gateway.Stateless()),
	}
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

func joinConfig(seed string, logs *logBuffer) Config {
	return Config{
		Local:    Member{Weight: 3, Zone: "z9", Name: "ignored", Modules: []string{"ignored@1"}},
		BindAddr: "127.0.0.1:0",
		Join:     []string{seed},
		Key:      testKey,
		Logger:   ptr(zerolog.New(logs).Level(zerolog.DebugLevel)),
	}
}

// TestJoinGateway: two embedded gateways join a gossip pool with one call
// each; a third member (a proxy's Gossip, no proxy needed) sees them with
// the name, addresses and modules of the running gateways; a drain is
// gossiped while the gateway still serves a call; when the drained
// gateway stops its member leaves the pool; Close leaves at once.
func TestJoinGateway(t *testing.T) {
	awaitMemberlistExit(t)
	px := startNode(t, "px1", RoleProxy, nil, nil)
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	gw1, gw2 := startGateway(t, "gw1", release), startGateway(t, "gw2", release)
	t.Cleanup(unblock) // before the gateways' Close, which waits for the call
	logs1, logs2 := &logBuffer{}, &logBuffer{}
	m1, err := JoinGateway(gw1, joinConfig(px.LocalAddr(), logs1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m1.Close() })
	m2, err := JoinGateway(gw2, joinConfig(px.LocalAddr(), logs2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m2.Close() })

	took := waitFor(t, converge, "the proxy's member sees both gateways", func() bool {
		for _, gw := range []*gateway.Gateway{gw1, gw2} {
			m, ok := px.Snapshot().Lookup(gw.Name())
			if !ok || m.Role != RoleGateway || m.State != StateReady || m.Addrs.TCP != gw.Addrs().TCP || m.Addrs.WS != "" ||
				!slices.Equal(m.Modules, []string{"echo@2", "hold@1"}) || m.Weight != 3 || m.Zone != "z9" {
				return false
			}
		}
		return true
	})
	t.Logf("both gateways seen by the proxy's member %v after joining", took)
	if got := m1.Gossip().Local(); got.Name != "gw1" || got.Addrs.Gossip != m1.Gossip().LocalAddr() {
		t.Fatalf("gw1's member: %+v", got)
	}

	// Drain gw1 while a call holds it open: the drain is gossiped at once,
	// and gw1 stays in the pool until it stops.
	p := gatewaytest.Dial(t, "tcp", gw1.Addrs().TCP, gatewaytest.Options{})
	p.Hello(0, protocol.SessionID{})
	_, held := p.Start(gatewaytest.Call{Target: "hold@1.Hold.Wait"})
	waitFor(t, converge, "the call in flight", func() bool { return gw1.Stats().CallsInFlight == 1 })
	drained := make(chan error, 1)
	go func() { drained <- gw1.Drain(context.Background()) }()
	took = waitFor(t, converge, "gw1 seen draining", func() bool {
		m, ok := px.Snapshot().Lookup("gw1")
		return ok && m.State == StateDraining
	})
	t.Logf("drain seen by the proxy's member %v after Drain", took)
	if gw1.State() != gateway.StateDraining {
		t.Fatalf("gw1 is %s while its call is in flight", gw1.State())
	}
	unblock()
	gatewaytest.Result(t, p.Wait(held), nil)
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	<-m1.Done()
	waitFor(t, converge, "gw1 gone from the pool", func() bool { _, ok := px.Snapshot().Lookup("gw1"); return !ok })
	// Failure detection takes 6 s and more: seeing it go in well under
	// that means it left.
	if d := time.Since(stopped); d > 4*time.Second {
		t.Fatalf("gw1 dropped %v after it stopped: it did not leave, it was declared dead", d)
	}
	if _, ok := logs1.find(map[string]string{"message": "discovery: left the gossip cluster"}); !ok {
		t.Fatal("gw1's member did not log leaving")
	}
	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}

	// Close leaves the pool while the gateway keeps serving.
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, converge, "gw2 gone from the pool", func() bool { _, ok := px.Snapshot().Lookup("gw2"); return !ok })
	if gw2.State() != gateway.StateReady {
		t.Fatalf("gw2 is %s after its member closed", gw2.State())
	}
	if _, ok := logs2.find(map[string]string{"message": "discovery: left the gossip cluster"}); !ok {
		t.Fatal("gw2's member did not log leaving")
	}
}

// TestJoinGatewayRefuses a gateway that is not running.
func TestJoinGatewayRefuses(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.TCP, cfg.WS, cfg.HTTP = "127.0.0.1:0", "", ""
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := JoinGateway(g, Config{BindAddr: "127.0.0.1:0"}); err == nil {
		t.Fatal("JoinGateway accepted a gateway that was not started")
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	_ = g.Close()
	if _, err := JoinGateway(g, Config{BindAddr: "127.0.0.1:0"}); err == nil {
		t.Fatal("JoinGateway accepted a stopped gateway")
	}
	if _, err := JoinGateway(nil, Config{}); err == nil {
		t.Fatal("JoinGateway accepted nil")
	}
}
