package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/graftlb/graftlb/clock"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/protocol"
)

func TestDrain(t *testing.T) {
	forBindings(t, func(t *testing.T, binding string) {
		changes := make(chan [2]gateway.State, 8)
		e := start(t, func(c *gatewayConfig) {
			c.DrainQuiet = 300 * time.Millisecond
			c.DrainGrace = time.Minute
			c.OnStateChange = func(from, to gateway.State) { changes <- [2]gateway.State{from, to} }
		})
		old := e.dial(t, binding)
		obj := newCart(t, old, gatewaytest.Call{})
		// A call in flight through the drain: it holds the drain open while
		// the test checks what a draining gateway does.
		_, slow := old.Start(gatewaytest.Call{Target: "chaos@1.Chaos.Sleep", Flags: stateless, Args: []any{1500}})
		eventually(t, "slow call admitted", func() bool { return e.g.Stats().CallsInFlight == 1 })

		drained := make(chan error, 1)
		go func() { drained <- e.g.Drain(context.Background()) }()

		if f := old.Next(); gatewaytest.ErrorOf(f) == nil || f.Type != protocol.TypeGoaway || gatewaytest.ErrorOf(f).Code != protocol.CodeDraining {
			t.Fatalf("got %s, want GOAWAY DRAINING", gatewaytest.Describe(f))
		}
		if code, body := e.get(t, "/readyz"); code != 503 || body != "draining" {
			t.Fatalf("/readyz = %d %q while draining", code, body)
		}
		if code, _ := e.get(t, "/status"); code != 200 {
			t.Fatalf("/status = %d while draining", code)
		}

		// A new connection is welcomed and told to go away; its new session
		// is refused, its stateless calls served.
		nw := e.dial(t, binding)
		if f := nw.Next(); f == nil || f.Type != protocol.TypeGoaway {
			t.Fatalf("new connection got %s, want GOAWAY", gatewaytest.Describe(f))
		}
		gatewaytest.ExpectError(t, nw.Call(gatewaytest.Call{Target: "cart@1.Cart.$new"}), protocol.CodeDraining)
		gatewaytest.ExpectError(t, nw.Call(gatewaytest.Call{Target: "cart@1.Cart.$new", Session: protocol.NewSessionID(),
			Flags: protocol.FlagNewSession}), protocol.CodeDraining)
		gatewaytest.Result(t, nw.Call(gatewaytest.Call{Target: "orders@1.Orders.GetOrder", Flags: stateless, Args: []any{"o"}}), nil)

		// The existing session keeps working, NEW_SESSION or not.
		addItem(t, old, obj, "pen", 1)
		gatewaytest.Result(t, old.Call(gatewaytest.Call{Target: "cart@1.Cart.$new", Flags: protocol.FlagNewSession}), nil)

		select {
		case err := <-drained:
			t.Fatalf("drain ended with a call in flight: %v", err)
		default:
		}
		gatewaytest.Result(t, old.Wait(slow), nil)
		if err := <-drained; err != nil {
			t.Fatalf("Drain: %v", err)
		}
		<-e.g.Done()
		if s := e.g.State(); s != gateway.StateStopped {
			t.Fatalf("state %s after drain", s)
		}
		old.WaitClosed()
		nw.WaitClosed()
		want := [][2]gateway.State{{gateway.StateNew, gateway.StateReady}, {gateway.StateReady, gateway.StateDraining},
			{gateway.StateDraining, gateway.StateStopped}}
		for _, w := range want {
			if got := <-changes; got != w {
				t.Fatalf("state change %v, want %v", got, w)
			}
		}
	})
}

func TestDrainEnds(t *testing.T) {
	t.Run("grace period", func(t *testing.T) {
		clk := clock.NewFake()
		e := start(t, func(c *gatewayConfig) {
			c.Clock = clk
			c.DrainQuiet = time.Second
			c.DrainGrace = 5 * time.Second
		})
		p := e.dial(t, "tcp")
		_, slow := p.Start(gatewaytest.Call{Target: "chaos@1.Chaos.Sleep", Flags: stateless, Args: []any{60000}})
		eventually(t, "slow call admitted", func() bool { return e.g.Stats().CallsInFlight == 1 })
		waiters := clk.Waiters()
		drained := make(chan error, 1)
		go func() { drained <- e.g.Drain(context.Background()) }()
		eventually(t, "drain timers armed", func() bool { return clk.Waiters() >= waiters+2 })
		clk.Advance(5 * time.Second)
		if err := <-drained; err != nil {
			t.Fatalf("Drain: %v", err)
		}
		<-e.g.Done()
		select {
		case f := <-slow:
			t.Fatalf("call cut by the grace period was answered: %s", gatewaytest.Describe(f))
		default:
		}
	})
	t.Run("context", func(t *testing.T) {
		e := start(t, nil)
		p := e.dial(t, "ws")
		p.Start(gatewaytest.Call{Target: "chaos@1.Chaos.Sleep", Flags: stateless, Args: []any{60000}})
		eventually(t, "slow call admitted", func() bool { return e.g.Stats().CallsInFlight == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := e.g.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Drain = %v, want the context's error", err)
		}
		<-e.g.Done()
		p.WaitClosed()
	})
	t.Run("idle gateway", func(t *testing.T) {
		e := start(t, func(c *gatewayConfig) { c.DrainQuiet = 50 * time.Millisecond })
		if err := e.g.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := e.g.Drain(context.Background()); err != nil {
			t.Fatalf("second Drain: %v", err)
		}
		if err := e.g.Start(); !errors.Is(err, gateway.ErrClosed) {
			t.Fatalf("Start after Drain = %v", err)
		}
	})
}

func TestHTTPEndpoints(t *testing.T) {
	e := start(t, nil)
	p := e.dial(t, "tcp")
	gatewaytest.Result(t, p.Call(gatewaytest.Call{Target: "orders@1.Orders.GetOrder", Flags: stateless, Args: []any{"o"}}), nil)
	newCart(t, p, gatewaytest.Call{})
	gatewaytest.ExpectError(t, p.Call(gatewaytest.Call{Target: "test@1.T.Boom", Flags: stateless}), protocol.CodeAppException)
	tests := []struct {
		path     string
		wantCode int
		check    func(t *testing.T, body string)
	}{
		{"/status", 200, func(t *testing.T, body string) {
			if body != "OK" {
				t.Fatalf("body %q", body)
			}
		}},
		{"/readyz", 200, nil},
		{"/stats", 200, func(t *testing.T, body string) {
			var s gateway.Stats
			if err := json.Unmarshal([]byte(body), &s); err != nil {
				t.Fatal(err)
			}
			if s.Name != "gw-test" || s.State != "ready" || s.Connections != 1 || s.Sessions != 1 || s.CallsInFlight != 0 ||
				s.CallsServed["orders@1"] != 1 || s.CallsServed["cart@1"] != 1 || s.CallsFailed["test@1"] != 1 {
				t.Fatalf("stats %s", body)
			}
		}},
		{"/nope", 404, nil},
		{"/ws", 404, nil},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			code, body := e.get(t, tc.path)
			if code != tc.wantCode {
				t.Fatalf("%s = %d %q", tc.path, code, body)
			}
			if tc.check != nil {
				tc.check(t, body)
			}
		})
	}
}
