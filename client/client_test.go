package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/gateway/modules/orders"
	"github.com/graftlb/graftlb/gateway/modules/ticker"
	"github.com/graftlb/graftlb/internal/testgw"
	"github.com/graftlb/graftlb/protocol"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	)
}

var bindings = []string{"tcp", "ws"}

func dial(t *testing.T, target string, o client.Options) *client.Conn {
	t.Helper()
	c, err := client.Dial(context.Background(), target, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// forEachBinding runs f against one gateway over TCP and over WebSocket.
func forEachBinding(t *testing.T, f func(t *testing.T, g *gateway.Gateway, target string)) {
	g := testgw.Start(t, "gw1", nil)
	for _, b := range bindings {
		t.Run(b, func(t *testing.T) { f(t, g, testgw.Targets(g)[b]) })
	}
}

func TestStatelessCall(t *testing.T) {
	forEachBinding(t, func(t *testing.T, g *gateway.Gateway, target string) {
		c := dial(t, target, client.Options{})
		if c.Server() != "gw1" || c.Session().ID().IsZero() {
			t.Fatalf("WELCOME: server %q session %v", c.Server(), c.Session().ID())
		}
		res, err := c.Session().CallStateless(ctx(t), "orders@1.Orders.GetOrder", "o-42")
		if err != nil {
			t.Fatal(err)
		}
		var o orders.Order
		if err := res.Decode(&o); err != nil {
			t.Fatal(err)
		}
		if want := orders.Make("o-42", "gw1"); o != want {
			t.Fatalf("GetOrder = %+v, want %+v", o, want)
		}
	})
}

func TestPipelinedCallsOutOfOrder(t *testing.T) {
	forEachBinding(t, func(t *testing.T, g *gateway.Gateway, target string) {
		c := dial(t, target, client.Options{})
		s := c.Session()
		// A slow call first, then many fast ones on the same connection:
		// the fast ones must come back before the slow one.
		slow := make(chan error, 1)
		go func() {
			_, err := s.CallStateless(ctx(t), "chaos@1.Chaos.Sleep", 2000)
			slow <- err
		}()
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		for i := 0; i < 200; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				id := fmt.Sprintf("o-%d", i)
				res, err := s.CallStateless(ctx(t), "orders@1.Orders.GetOrder", id)
				if err != nil {
					errs <- err
					return
				}
				var o orders.Order
				if err := res.Decode(&o); err != nil || o.ID != id {
					errs <- fmt.Errorf("call %d got %+v (%v)", i, o, err)
				}
			}(i)
		}
		wg.Wait()
		select {
		case err := <-slow:
			t.Fatalf("the slow call finished before 200 fast ones: %v", err)
		default:
		}
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if err := <-slow; err != nil {
			t.Fatal(err)
		}
	})
}

func TestObjectsAndResume(t *testing.T) {
	forEachBinding(t, func(t *testing.T, g *gateway.Gateway, target string) {
		c := dial(t, target, client.Options{})
		cartObj, err := c.Session().New(ctx(t), "cart@1", "Cart")
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range []struct {
			name  string
			price int64
		}{{"apple", 120}, {"pear", 80}} {
			if _, err := cartObj.Call(ctx(t), "AddItem", it.name, it.price); err != nil {
				t.Fatal(err)
			}
		}
		id, objID := c.Session().ID(), cartObj.ID()
		_ = c.Close()

		// Reconnect with the session id: the cart is still there.
		c2 := dial(t, target, client.Options{Session: id, Resume: true})
		if c2.Session().ID() != id {
			t.Fatalf("resumed session %v, want %v", c2.Session().ID(), id)
		}
		obj := c2.Session().Object("cart@1", "Cart", objID)
		res, err := obj.Call(ctx(t), "Total")
		if err != nil {
			t.Fatal(err)
		}
		var total cart.TotalResult
		if err := res.Decode(&total); err != nil || total.Total != 200 {
			t.Fatalf("Total after resume = %+v (%v), want 200", total, err)
		}
		if err := obj.Release(ctx(t)); err != nil {
			t.Fatal(err)
		}
		if _, err := obj.Call(ctx(t), "Total"); !errors.Is(err, protocol.ErrNotFound) {
			t.Fatalf("call after release: %v, want NOT_FOUND", err)
		}
	})
}

func TestManySessionsOnOneConnection(t *testing.T) {
	forEachBinding(t, func(t *testing.T, g *gateway.Gateway, target string) {
		c := dial(t, target, client.Options{})
		const n = 20
		objs := make([]*client.Object, n)
		for i := range objs {
			s := c.NewSession()
			o, err := s.New(ctx(t), "cart@1", "Cart")
			if err != nil {
				t.Fatal(err)
			}
			for j := 0; j <= i; j++ {
				if _, err := o.Call(ctx(t), "AddItem", "x", int64(1)); err != nil {
					t.Fatal(err)
				}
			}
			objs[i] = o
		}
		for i, o := range objs {
			res, err := o.Call(ctx(t), "Items")
			if err != nil {
				t.Fatal(err)
			}
			var items cart.ItemsResult
			if err := res.Decode(&items); err != nil || len(items.Items) != i+1 {
				t.Fatalf("session %d has %d items (%v), want %d", i, len(items.Items), err, i+1)
			}
		}
		// A session the gateway never saw, resumed: SESSION_LOST.
		ghost := c.ResumeSession(protocol.NewSessionID())
		if _, err := ghost.Call(ctx(t), "orders@1.Orders.GetOrder", "o-1"); !errors.Is(err, protocol.ErrSessionLost) {
			t.Fatalf("call in an unknown resumed session: %v, want SESSION_LOST", err)
		}
	})
}

func TestCallbacksAndEvents(t *testing.T) {
	forEachBinding(t, func(t *testing.T, g *gateway.Gateway, target string) {
		c := dial(t, target, client.Options{})
		s := c.Session()
		ref := s.Callback(func(_ context.Context, args []protocol.RawValue) (any, error) {
			var i int64
			if err := protocol.Unmarshal(args[0], &i); err != nil {
				return nil, err
			}
			return i * 10, nil
		})
		res, err := s.Call(ctx(t), "ticker@1.Ticker.Each", 5, ref)
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		if err := res.Decode(&sum); err != nil || sum != (0+1+2+3+4)*10 {
			t.Fatalf("Each = %d (%v), want 100", sum, err)
		}

		var mu sync.Mutex
		var seqs []int
		s.OnEvent(func(e client.Event) {
			var tick ticker.Tick
			if e.Name == ticker.EventName && e.Decode(&tick) == nil && tick.Topic == "t1" {
				mu.Lock()
				seqs = append(seqs, tick.Seq)
				mu.Unlock()
			}
		})
		if _, err := s.Call(ctx(t), "ticker@1.Ticker.Subscribe", "t1", 50); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(seqs) != 50 {
			t.Fatalf("got %d events before the result, want 50", len(seqs))
		}
		for i, q := range seqs {
			if q != i {
				t.Fatalf("event %d has seq %d: out of order", i, q)
			}
		}
	})
}

func TestDeadlineAndErrors(t *testing.T) {
	forEachBinding(t, func(t *testing.T, g *gateway.Gateway, target string) {
		c := dial(t, target, client.Options{})
		s := c.Session()
		short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if _, err := s.CallStateless(short, "chaos@1.Chaos.Sleep", 5000); !errors.Is(err, protocol.ErrDeadlineExceeded) {
			t.Fatalf("sleep past the deadline: %v, want DEADLINE_EXCEEDED", err)
		}
		tests := []struct {
			target string
			args   []any
			want   *protocol.Error
		}{
			{"orders@1.Orders.Nope", nil, protocol.ErrNotFound},
			{"nope@1.Orders.GetOrder", []any{"x"}, protocol.ErrNotFound},
			{"orders@1.Orders.GetOrder", []any{42}, protocol.ErrBadArgs},
			{"chaos@1.Chaos.Fail", []any{"OVERLOADED"}, protocol.ErrOverloaded},
		}
		for _, tt := range tests {
			if _, err := s.CallStateless(ctx(t), tt.target, tt.args...); !errors.Is(err, tt.want) {
				t.Errorf("%s%v: %v, want %s", tt.target, tt.args, err, tt.want.Code)
			}
		}
		// The connection still works after all that.
		if _, err := s.CallStateless(ctx(t), "orders@1.Orders.GetOrder", "o-1"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestConnectionLostAndAutoReconnect(t *testing.T) {
	for _, b := range bindings {
		t.Run(b, func(t *testing.T) {
			g := testgw.Start(t, "gw1", nil)
			addr := g.Addrs()
			c := dial(t, testgw.Targets(g)[b], client.Options{AutoReconnect: true})
			s := c.Session()
			inflight := make(chan error, 1)
			go func() {
				_, err := s.CallStateless(ctx(t), "chaos@1.Chaos.Sleep", 10000)
				inflight <- err
			}()
			waitInflight(t, g)
			_ = g.Close()
			if err := <-inflight; !errors.Is(err, client.ErrConnectionLost) {
				t.Fatalf("call in flight when the gateway stopped: %v, want ErrConnectionLost", err)
			}
			// A new gateway on the same addresses: the client comes back.
			testgw.Start(t, "gw1b", func(c *gateway.Config) { c.TCP, c.WS, c.HTTP = addr.TCP, addr.WS, addr.HTTP })
			deadline := time.Now().Add(10 * time.Second)
			for {
				res, err := s.CallStateless(ctx(t), "orders@1.Orders.GetOrder", "o-1")
				if err == nil {
					var o orders.Order
					if err := res.Decode(&o); err != nil || o.Gateway != "gw1b" {
						t.Fatalf("after reconnect: %+v %v", o, err)
					}
					break
				}
				if !errors.Is(err, protocol.ErrUnavailable) || time.Now().After(deadline) {
					t.Fatalf("while reconnecting: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

func waitInflight(t *testing.T, g *gateway.Gateway) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for g.Stats().CallsInFlight == 0 {
		if time.Now().After(deadline) {
			t.Fatal("call never reached the gateway")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"127.0.0.1:1", "tcp://127.0.0.1:1", true},
		{"tcp://h:1", "tcp://h:1", true},
		{"ws://h:1", "ws://h:1/ws", true},
		{"ws://h:1/ws", "ws://h:1/ws", true},
		{"http://h:1", "", false},
		{"tcp://", "", false},
	}
	for _, tt := range tests {
		u, err := client.ParseTarget(tt.in)
		if (err == nil) != tt.ok || (tt.ok && u.String() != tt.want) {
			t.Errorf("ParseTarget(%q) = %v, %v", tt.in, u, err)
		}
	}
}
