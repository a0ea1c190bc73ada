package balancer

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/internal/proctest"
	"github.com/graftlb/graftlb/protocol"
	"github.com/graftlb/graftlb/transport"
)

// settledModule waits until module has no call in flight at p, and no
// call at all is active.
func settledModule(t *testing.T, p *Proxy, module string) {
	t.Helper()
	proctest.Eventually(t, 10*time.Second, module+"'s calls all settled", func() bool {
		return p.modLimit.inflight(module) == 0 && p.Stats().Active == 0
	})
}

func wantOverloadedModule(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, protocol.ErrOverloaded) || !strings.Contains(err.Error(), "max_module_calls") {
		t.Fatalf("a call past the module's cap: %v, want OVERLOADED naming max_module_calls", err)
	}
}

// TestModuleCallsCap: with MaxModuleCalls 2, a third call of a module
// with two in flight gets OVERLOADED naming the cap and is not forwarded,
// while other modules' calls pass; the slots come back when the calls are
// answered, and when the proxy fails one at its deadline (the gateway
// still runs it).
func TestModuleCallsCap(t *testing.T) {
	gs := startGateways(t, 2, nil)
	p := startProxy(t, gs, func(c *Config) {
		c.MaxModuleCalls = 2
		// The failures below are the test's: they must not eject the
		// gateways or open their breakers.
		c.Health.Breaker.FailureRate = 1
		c.Health.Outlier.ConsecutiveFailures, c.Health.Outlier.FailureRate = -1, -1
	})
	c := dialProxy(t, proxyTargets(p)["tcp"])
	ctx := testCtx(t)
	before := served(gs, "chaos@1")
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := c.NewSession().CallStateless(ctx, "chaos@1.Chaos.Sleep", 500)
			errs <- err
		}()
	}
	proctest.Eventually(t, 5*time.Second, "two chaos calls in flight", func() bool { return p.modLimit.inflight("chaos@1") == 2 })
	_, err := c.Session().CallStateless(ctx, "chaos@1.Chaos.Sleep", 1)
	wantOverloadedModule(t, err)
	if _, err := c.Session().CallStateless(ctx, "orders@1.Orders.GetOrder", "o-1"); err != nil {
		t.Fatalf("another module's call while chaos@1 is at its cap: %v", err)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	settledModule(t, p, "chaos@1")
	if got := served(gs, "chaos@1") - before; got != 2 {
		t.Fatalf("gateways served %d chaos calls, want 2: the refused one was forwarded", got)
	}
	if p.Stats().ModuleCallsRefused != 1 {
		t.Fatalf("refusals counted %d, want 1", p.Stats().ModuleCallsRefused)
	}

	// Deadline expiry at the proxy gives the slot back.
	for range 2 {
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, err := c.Session().CallStateless(short, "chaos@1.Chaos.Sleep", 2000)
		cancel()
		if !errors.Is(err, protocol.ErrDeadlineExceeded) {
			t.Fatalf("a call past its deadline: %v", err)
		}
	}
	settledModule(t, p, "chaos@1")
	// Retries of an idempotent call that fails on every gateway: one slot,
	// given back once, whatever the attempts.
	fail := protocol.Target{Module: "chaos@1", Type: "Chaos", Method: "Fail"}
	for range 3 {
		_, err := c.Session().Do(ctx, client.Request{Target: fail, Args: []any{"INTERNAL"}, Stateless: true, Idempotent: true})
		if !errors.Is(err, protocol.ErrInternal) {
			t.Fatalf("failing idempotent call: %v", err)
		}
	}
	if p.Stats().Retries == 0 {
		t.Fatal("no retry was made: the test proves nothing about them")
	}
	settledModule(t, p, "chaos@1")
	for range 2 {
		if _, err := c.Session().CallStateless(ctx, "chaos@1.Chaos.Sleep", 1); err != nil {
			t.Fatalf("after every kind of settle: %v", err)
		}
	}
}

// TestModuleCapOnewaySettles is the field's wedge, with the module cap on:
// 2,000 ONEWAY calls, stateless and stateful, many more than the cap, each
// holding its slot until its gateway acknowledged it (or refused silently
// past the cap); afterwards the module has nothing in flight and normal
// calls pass.
func TestModuleCapOnewaySettles(t *testing.T) {
	gs := startGateways(t, 2, nil)
	p := startProxy(t, gs, func(c *Config) { c.MaxModuleCalls = 50 })
	a := gatewaytest.Dial(t, "tcp", p.Addrs().TCP, gatewaytest.Options{})
	a.Hello(0, protocol.SessionID{})
	for i := range 2000 {
		c := getOrderCall
		c.Flags |= protocol.FlagOneway
		c.CallID = uint32(i%8 + 1)
		if i%2 == 1 {
			c.Flags = protocol.FlagOneway
		}
		if err := a.Send(a.Frame(c)); err != nil {
			t.Fatal(err)
		}
	}
	settledModule(t, p, "orders@1")
	expectSilence(t, a)
	for i := range 100 {
		if f := a.Call(getOrderCall); f == nil || f.Type != protocol.TypeResult {
			t.Fatalf("call %d after 2,000 ONEWAY calls: %s", i, gatewaytest.Describe(f))
		}
	}
	settledModule(t, p, "orders@1")
}

// TestModuleCapNATS: calls routed over NATS hold and give back their
// module's slots like direct ones, ONEWAY ones included.
func TestModuleCapNATS(t *testing.T) {
	np := startNATSPoolWith(t, 1, nil, &transport.SubscriberConfig{}, func(c *Config) { c.MaxModuleCalls = 1 },
		"chaos@1=nats:queue", "orders@1=nats:queue")
	c := dialProxy(t, proxyTargets(np.p)["tcp"])
	ctx := testCtx(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.NewSession().CallStateless(ctx, "chaos@1.Chaos.Sleep", 500)
		done <- err
	}()
	proctest.Eventually(t, 5*time.Second, "a chaos call in flight over NATS", func() bool { return np.p.modLimit.inflight("chaos@1") == 1 })
	_, err := c.Session().CallStateless(ctx, "chaos@1.Chaos.Sleep", 1)
	wantOverloadedModule(t, err)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	settledModule(t, np.p, "chaos@1")
	get := protocol.Target{Module: "orders@1", Type: "Orders", Method: "GetOrder"}
	for range 200 {
		_, _ = c.Session().Do(ctx, client.Request{Target: get, Args: []any{"o-1"}, Stateless: true, Oneway: true})
	}
	settledModule(t, np.p, "orders@1")
	if _, err := c.Session().CallStateless(ctx, "orders@1.Orders.GetOrder", "o-1"); err != nil {
		t.Fatalf("after ONEWAY calls over NATS: %v", err)
	}
}
