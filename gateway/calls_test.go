package gateway_test

import (
	"strings"
	"testing"
	"time"

	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/gateway/modules/orders"
	"github.com/graftlb/graftlb/gateway/modules/ticker"
	"github.com/graftlb/graftlb/protocol"
)

const stateless = protocol.FlagStateless

func TestHello(t *testing.T) {
	forBindings(t, func(t *testing.T, binding string) {
		e := start(t, func(c *gatewayConfig) {
			c.Limits.MaxInflight = 77
			c.SessionTTL = 3 * time.Minute
		})
		given := protocol.NewSessionID()
		tests := []struct {
			name    string
			flags   protocol.Flags
			session protocol.SessionID
		}{
			{"zero id gets a fresh one", 0, protocol.SessionID{}},
			{"non-zero id is the session", 0, given},
			{"resume echoes the id", protocol.FlagResume, given},
			{"proxy", protocol.FlagProxy, protocol.SessionID{}},
		}
		seen := map[protocol.SessionID]bool{}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				p := gatewaytest.Dial(t, binding, e.addr(binding), gatewaytest.Options{})
				f, w := p.Hello(tc.flags, tc.session)
				switch {
				case f.Session.IsZero():
					t.Fatal("WELCOME carries the zero session id")
				case !tc.session.IsZero() && f.Session != tc.session:
					t.Fatalf("WELCOME session %s, want %s", f.Session, tc.session)
				case tc.session.IsZero() && seen[f.Session]:
					t.Fatalf("fresh session id %s handed out twice", f.Session)
				}
				seen[f.Session] = true
				want := protocol.Welcome{Server: "gw-test", MaxFrame: 1 << 20, MaxInflight: 77,
					IdleTimeoutMs: 300000, SessionTTLMs: 180000}
				if w != want {
					t.Fatalf("WELCOME %+v, want %+v", w, want)
				}
			})
		}
	})
}

func TestStatelessCalls(t *testing.T) {
	forBindings(t, func(t *testing.T, binding string) {
		e := start(t, nil)
		p := e.dial(t, binding)
		tests := []struct {
			name     string
			call     gatewaytest.Call
			check    func(t *testing.T, f *protocol.Frame)
			wantCode protocol.Code
			wantType string
		}{
			{name: "GetOrder", call: gatewaytest.Call{Target: "orders@1.Orders.GetOrder", Args: []any{"o-42"}},
				check: func(t *testing.T, f *protocol.Frame) {
					var o order
					gatewaytest.Result(t, f, &o)
					if want := orders.Make("o-42", "gw-test"); o != want {
						t.Fatalf("order %+v, want %+v", o, want)
					}
				}},
			{name: "ListOrders", call: gatewaytest.Call{Target: "orders@1.Orders.ListOrders", Args: []any{3}},
				check: func(t *testing.T, f *protocol.Frame) {
					var os []order
					gatewaytest.Result(t, f, &os)
					if len(os) != 3 || os[2] != orders.Make("o-3", "gw-test") {
						t.Fatalf("orders %+v", os)
					}
				}},
			{name: "ListOrders too many", call: gatewaytest.Call{Target: "orders@1.Orders.ListOrders", Args: []any{orders.MaxList + 1}},
				wantCode: protocol.CodeBadArgs},
			{name: "typed arguments", call: gatewaytest.Call{Target: "test@1.T.Add", Args: []any{2, 40}},
				check: func(t *testing.T, f *protocol.Frame) {
					var n int64
					gatewaytest.Result(t, f, &n)
					if n != 42 {
						t.Fatalf("Add = %d", n)
					}
				}},
			{name: "plain error is APP_EXCEPTION with its Go type", call: gatewaytest.Call{Target: "test@1.T.Boom"},
				wantCode: protocol.CodeAppException, wantType: "*errors.errorString"},
			{name: "AppError keeps its type", call: gatewaytest.Call{Target: "test@1.T.App"},
				wantCode: protocol.CodeAppException, wantType: "OutOfStock"},
			{name: "Info", call: gatewaytest.Call{Target: "test@1.T.Info"},
				check: func(t *testing.T, f *protocol.Frame) {
					var m map[string]any
					gatewaytest.Result(t, f, &m)
					if m["gateway"] != "gw-test" || m["stateless"] != true || m["target"] != "test@1.T.Info" || m["proxied"] != false {
						t.Fatalf("Info = %v", m)
					}
				}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				tc.call.Flags |= stateless
				f := p.Call(tc.call)
				if tc.wantCode != 0 {
					e := gatewaytest.ExpectError(t, f, tc.wantCode)
					if e.Type != tc.wantType {
						t.Fatalf("exception type %q, want %q", e.Type, tc.wantType)
					}
					return
				}
				tc.check(t, f)
			})
		}
		if n := e.g.Stats().Sessions; n != 0 {
			t.Fatalf("stateless calls created %d sessions", n)
		}
	})
}

// newCart creates a cart in the peer's session and returns its object id.
func newCart(t *testing.T, p *gatewaytest.Peer, c gatewaytest.Call) uint64 {
	t.Helper()
	c.Target = "cart@1.Cart.$new"
	f := p.Call(c)
	gatewaytest.Result(t, f, nil)
	if f.Object == 0 || len(f.Body) != 1 || f.Body[0] != 0xf6 {
		t.Fatalf("$new RESULT: object %d body %x, want an object id and CBOR null", f.Object, f.Body)
	}
	return f.Object
}

func addItem(t *testing.T, p *gatewaytest.Peer, obj uint64, name string, price int64) cart.Added {
	t.Helper()
	var a cart.Added
	gatewaytest.Result(t, p.Call(gatewaytest.Call{Target: "cart@1.Cart.AddItem", Object: obj, Args: []any{name, price}}), &a)
	return a
}

func TestCart(t *testing.T) {
	forBindings(t, func(t *testing.T, binding string) {
		e := start(t, nil)
		p := e.dial(t, binding)
		obj := newCart(t, p, gatewaytest.Call{})
		if a := addItem(t, p, obj, "pen", 150); a != (cart.Added{Items: 1, Total: 150, Gateway: "gw-test"}) {
			t.Fatalf("AddItem = %+v", a)
		}
		if a := addItem(t, p, obj, "ink", 250); a.Items != 2 || a.Total != 400 {
			t.Fatalf("AddItem = %+v", a)
		}
		var tot cart.TotalResult
		gatewaytest.Result(t, p.Call(gatewaytest.Call{Target: "cart@1.Cart.Total", Object: obj}), &tot)
		if tot != (cart.TotalResult{Total: 400, Gateway: "gw-test"}) {
			t.Fatalf("Total = %+v", tot)
		}
		var its cart.ItemsResult
		gatewaytest.Result(t, p.Call(gatewaytest.Call{Target: "cart@1.Cart.Items", Object: obj}), &its)
		if strings.Join(its.Items, ",") != "pen,ink" {
			t.Fatalf("Items = %+v", its)
		}
		other := newCart(t, p, gatewaytest.Call{})
		if other == obj {
			t.Fatal("two carts got the same object id")
		}
		e1 := gatewaytest.ExpectError(t, p.Call(gatewaytest.Call{Target: "cart@1.Cart.AddItem", Object: obj, Args: []any{"x", -1}}),
			protocol.CodeAppException)
		if e1.Type != "InvalidPrice" {
			t.Fatalf("exception type %q", e1.Type)
		}
		rel := p.Call(gatewaytest.Call{Target: "cart@1.Cart.$release", Object: obj})
		gatewaytest.Result(t, rel, nil)
		if rel.Object != obj {
			t.Fatalf("$release RESULT object %d, want %d", rel.Object, obj)
		}
		for _, c := range []gatewaytest.Call{
			{Target: "cart@1.Cart.Total", Object: obj},
			{Target: "cart@1.Cart.$release", Object: obj},
			{Target: "cart@1.Cart.Total", Object: 999},
		} {
			gatewaytest.ExpectError(t, p.Call(c), protocol.CodeNotFound)
		}
		var tot2 cart.TotalResult
		gatewaytest.Result(t, p.Call(gatewaytest.Call{Target: "cart@1.Cart.Total", Object: other}), &tot2)
		if tot2.Total != 0 {
			t.Fatalf("the other cart has total %d", tot2.Total)
		}
	})
}

func TestResume(t *testing.T) {
	forBindings(t, func(t *testing.T, binding string) {
		e := start(t, nil)
		tests := []struct {
			name string
			bye  func(p *gatewaytest.Peer)
		}{
			{"after a clean close", (*gatewaytest.Peer).Close},
			{"after the connection dropped", (*gatewaytest.Peer).Abort},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				p1 := gatewaytest.Dial(t, binding, e.addr(binding), gatewaytest.Options{})
				w, _ := p1.Hello(0, protocol.SessionID{})
				obj := newCart(t, p1, gatewaytest.Call{})
				addItem(t, p1, obj, "book", 900)
				tc.bye(p1)

				p2 := gatewaytest.Dial(t, binding, e.addr(binding), gatewaytest.Options{})
				p2.Hello(protocol.FlagResume, w.Session)
				var its cart.ItemsResult
				gatewaytest.Result(t, p2.Call(gatewaytest.Call{Target: "cart@1.Cart.Items", Object: obj}), &its)
				if strings.Join(its.Items, ",") != "book" {
					t.Fatalf("resumed session has items %v", its.Items)
				}
			})
		}
		t.Run("unknown session", func(t *testing.T) {
			p := gatewaytest.Dial(t, binding, e.addr(binding), gatewaytest.Options{})
			p.Hello(protocol.FlagResume, protocol.NewSessionID())
			gatewaytest.ExpectError(t, p.Call(gatewaytest.Call{Target: "cart@1.Cart.Items", Object: 1}), protocol.CodeSessionLost)
			gatewaytest.ExpectError(t, p.Call(gatewaytest.Call{Target: "cart@1.Cart.$new"}), protocol.CodeSessionLost)
		})
	})
}

func TestOutOfOrder(t *testing.T) {
	forBindings(t, func(t *testing.T, binding string) {
		e := start(t, nil)
		p := e.dial(t, binding)
		// The slow call waits for its callback, which the test answers only
		// after the fast calls have been answered: no timing involved.
		_, slow := p.Start(gatewaytest.Call{Target: "ticker@1.Ticker.Each", Flags: stateless,
			Args: []any{1, protocol.CallbackRef(5)}})
		cb := p.Next()
		if cb == nil || cb.Type != protocol.TypeCallback {
			t.Fatalf("got %s, want CALLBACK", gatewaytest.Describe(cb))
		}
		for i := 0; i < 5; i++ {
			gatewaytest.Result(t, p.Call(gatewaytest.Call{Target: "orders@1.Orders.GetOrder", Flags: stateless, Args: []any{"o-1"}}), nil)
		}
		select {
		case f := <-slow:
			t.Fatalf("slow call answered before its callback: %s", gatewaytest.Describe(f))
		default:
		}
		body, _ := protocol.Marshal(7)
		_ = p.Send(&protocol.Frame{Type: protocol.TypeCallbackResult, CallID: cb.CallID, Body: body})
		var sum int64
		gatewaytest.Result(t, p.Wait(slow), &sum)
		if sum != 7 {
			t.Fatalf("sum %d", sum)
		}

		// Many slow calls run at once, not one after another.
		const n, ms = 20, 200
		begin := time.Now()
		var chans []<-chan *protocol.Frame
		for i := 0; i < n; i++ {
			_, ch := p.Start(gatewaytest.Call{Target: "chaos@1.Chaos.Sleep", Flags: stateless, Args: []any{ms}})
			chans = append(chans, ch)
		}
		for _, ch := range chans {
			gatewaytest.Result(t, p.Wait(ch), nil)
		}
		if d := time.Since(begin); d > n*ms*time.Millisecond/2 {
			t.Fatalf("%d calls of %dms took %v: not concurrent", n, ms, d)
		}
	})
}

func TestCallbacks(t *testing.T) {
	forBindings(t, func(t *testing.T, binding string) {
		e := start(t, nil)
		var got []*protocol.Frame
		fail := false
		p := gatewaytest.Dial(t, binding, e.addr(binding), gatewaytest.Options{
			OnCallback: func(f *protocol.Frame) (any, *protocol.Error) {
				got = append(got, f) // the peer's reader runs callbacks one at a time
				if fail {
					return nil, &protocol.Error{Code: protocol.CodeAppException, Message: "client says no", Type: "ClientError"}
				}
				var args []int
				if err := protocol.Unmarshal(f.Body, &args); err != nil || len(args) != 1 {
					return nil, protocol.Errorf(protocol.CodeBadArgs, "args %x", f.Body)
				}
				return args[0] * 2, nil
			}})
		w, _ := p.Hello(0, protocol.SessionID{})
		var sum int64
		gatewaytest.Result(t, p.Call(gatewaytest.Call{Target: "ticker@1.Ticker.Each", Flags: stateless,
			Args: []any{5, protocol.CallbackRef(42)}}), &sum)
		if sum != 20 {
			t.Fatalf("sum %d, want 20", sum)
		}
		if len(got) != 5 {
			t.Fatalf("%d callbacks, want 5", len(got))
		}
		for _, f := range got {
			if f.Object != 42 || f.Session != w.Session || string(f.Module) != "ticker@1" || string(f.Method) != "Each" || f.CallID == 0 {
				t.Fatalf("CALLBACK header: object %d session %s module %s method %s id %d",
					f.Object, f.Session, f.Module, f.Method, f.CallID)
			}
		}
		fail = true
		e2 := gatewaytest.ExpectError(t, p.Call(gatewaytest.Call{Target: "ticker@1.Ticker.Each", Flags: stateless,
			Args: []any{3, protocol.CallbackRef(42)}}), protocol.CodeAppException)
		if e2.Type != "ClientError" || e2.Message != "client says no" {
			t.Fatalf("error %+v, want the client's", e2)
		}
		gatewaytest.ExpectError(t, p.Call(gatewaytest.Call{Target: "ticker@1.Ticker.Each", Flags: stateless,
			Args: []any{3, 42}}), protocol.CodeBadArgs)
	})
}

func TestEvents(t *testing.T) {
	forBindings(t, func(t *testing.T, binding string) {
		e := start(t, nil)
		p := gatewaytest.Dial(t, binding, e.addr(binding), gatewaytest.Options{})
		w, _ := p.Hello(0, protocol.SessionID{})
		var n int
		gatewaytest.Result(t, p.Call(gatewaytest.Call{Target: "ticker@1.Ticker.Subscribe", Flags: stateless, Args: []any{"news", 3}}), &n)
		if n != 3 {
			t.Fatalf("Subscribe returned %d", n)
		}
		// The events were read before the RESULT: they are queued already.
		for i := 0; i < 3; i++ {
			f := p.NextWithin(0)
			if f == nil || f.Type != protocol.TypeEvent {
				t.Fatalf("event %d: got %s", i, gatewaytest.Describe(f))
			}
			var tick ticker.Tick
			if err := protocol.Unmarshal(f.Body, &tick); err != nil {
				t.Fatal(err)
			}
			if tick != (ticker.Tick{Topic: "news", Seq: i, Gateway: "gw-test"}) || string(f.Method) != ticker.EventName ||
				f.Session != w.Session || string(f.Module) != "ticker@1" || string(f.TypeName) != "Ticker" || f.CallID != 0 {
				t.Fatalf("event %d: %+v method %s session %s", i, tick, f.Method, f.Session)
			}
		}
	})
}

func TestDeadline(t *testing.T) {
	forBindings(t, func(t *testing.T, binding string) {
		e := start(t, nil)
		p := e.dial(t, binding)
		tests := []struct {
			name     string
			call     gatewaytest.Call
			wantCode protocol.Code
		}{
			{"module honours ctx", gatewaytest.Call{Target: "chaos@1.Chaos.Sleep", Args: []any{5000}, Deadline: 100}, protocol.CodeDeadlineExceeded},
			{"module ignores ctx", gatewaytest.Call{Target: "test@1.T.Block", Args: []any{1500}, Deadline: 100}, protocol.CodeDeadlineExceeded},
			{"in time", gatewaytest.Call{Target: "chaos@1.Chaos.Sleep", Args: []any{1}, Deadline: 5000}, 0},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				tc.call.Flags = stateless
				begin := time.Now()
				f := p.Call(tc.call)
				if tc.wantCode == 0 {
					gatewaytest.Result(t, f, nil)
					return
				}
				gatewaytest.ExpectError(t, f, tc.wantCode)
				if d := time.Since(begin); d > time.Second {
					t.Fatalf("DEADLINE_EXCEEDED after %v, deadline was 100ms", d)
				}
			})
		}
		// The late result of Block is dropped: once the gateway has logged
		// dropping it, a PING's PONG is the next frame, not a RESULT.
		eventually(t, "late result dropped", func() bool {
			for _, m := range e.logs.lines(t) {
				if strings.HasPrefix(m["message"].(string), "late result dropped") {
					return true
				}
			}
			return false
		})
		_ = p.Send(&protocol.Frame{Type: protocol.TypePing, CallID: 99, Body: []byte("x")})
		if f := p.Next(); f == nil || f.Type != protocol.TypePong || f.CallID != 99 || string(f.Body) != "x" {
			t.Fatalf("after the deadline got %s, want PONG 99", gatewaytest.Describe(f))
		}
	})
}

// TestPanicRecovered: a panic in module code reaches the client as
// APP_EXCEPTION with a generic message that names the method and tells
// nothing of the panic; its value and stack go to the gateway's log.
func TestPanicRecovered(t *testing.T) {
	forBindings(t, func(t *testing.T, binding string) {
		e := start(t, nil)
		p := e.dial(t, binding)
		pe := gatewaytest.ExpectError(t, p.Call(gatewaytest.Call{Target: "test@1.T.Panic", Flags: stateless}), protocol.CodeAppException)
		if pe.Message != "internal error in test@1.T.Panic" || pe.Type != "panic" {
			t.Fatalf("client got %q (type %q), want a generic message without the panic's text", pe.Message, pe.Type)
		}
		gatewaytest.Result(t, p.Call(gatewaytest.Call{Target: "orders@1.Orders.GetOrder", Flags: stateless, Args: []any{"o-1"}}), nil)
		lines := e.logs.notable(t, p.LocalAddr())
		if len(lines) != 1 || lines[0]["level"] != "error" || lines[0]["panic"] != "module bug" ||
			!strings.Contains(lines[0]["stack"].(string), "helpers_test.go") {
			t.Fatalf("want one error line with the panic value and its stack, got %v", lines)
		}
	})
}

func TestOverloaded(t *testing.T) {
	forBindings(t, func(t *testing.T, binding string) {
		e := start(t, func(c *gatewayConfig) { c.Limits.MaxInflight = 2 })
		p := e.dial(t, binding)
		var held []<-chan *protocol.Frame
		var cbs []*protocol.Frame
		for i := 0; i < 2; i++ {
			_, ch := p.Start(gatewaytest.Call{Target: "ticker@1.Ticker.Each", Flags: stateless, Args: []any{1, protocol.CallbackRef(1)}})
			held = append(held, ch)
			cbs = append(cbs, p.Next())
		}
		gatewaytest.ExpectError(t, p.Call(gatewaytest.Call{Target: "orders@1.Orders.GetOrder", Flags: stateless, Args: []any{"o"}}),
			protocol.CodeOverloaded)
		body, _ := protocol.Marshal(1)
		for i, cb := range cbs {
			_ = p.Send(&protocol.Frame{Type: protocol.TypeCallbackResult, CallID: cb.CallID, Body: body})
			gatewaytest.Result(t, p.Wait(held[i]), nil)
		}
		gatewaytest.Result(t, p.Call(gatewaytest.Call{Target: "orders@1.Orders.GetOrder", Flags: stateless, Args: []any{"o"}}), nil)
	})
}

func TestMaxConns(t *testing.T) {
	forBindings(t, func(t *testing.T, binding string) {
		e := start(t, func(c *gatewayConfig) { c.MaxConns = 1 })
		p1 := e.dial(t, binding)
		p2 := gatewaytest.Dial(t, binding, e.addr(binding), gatewaytest.Options{})
		gatewaytest.ExpectError(t, p2.Next(), protocol.CodeOverloaded)
		if err := p2.WaitClosed(); err == nil {
			t.Fatal("refused connection not closed")
		}
		gatewaytest.Result(t, p1.Call(gatewaytest.Call{Target: "orders@1.Orders.GetOrder", Flags: stateless, Args: []any{"o"}}), nil)
	})
}

func TestIdleTimeout(t *testing.T) {
	forBindings(t, func(t *testing.T, binding string) {
		const idle = 300 * time.Millisecond
		e := start(t, func(c *gatewayConfig) { c.Limits.IdleTimeout = idle })
		p := e.dial(t, binding)
		// PINGs every idle/3 keep the connection open well past idle.
		tk := time.NewTicker(idle / 3)
		defer tk.Stop()
		begin := time.Now()
		for i := uint32(1); time.Since(begin) < 3*idle; i++ {
			<-tk.C
			_ = p.Send(&protocol.Frame{Type: protocol.TypePing, CallID: i})
			if f := p.Next(); f == nil || f.Type != protocol.TypePong || f.CallID != i {
				t.Fatalf("ping %d: got %s", i, gatewaytest.Describe(f))
			}
		}
		silent := time.Now()
		p.WaitClosed()
		if d := time.Since(silent); d < idle/2 || d > idle+2*time.Second {
			t.Fatalf("closed %v after the last frame, idle timeout %v", d, idle)
		}
	})
}

func TestEventsThroughProxy(t *testing.T) {
	forBindings(t, func(t *testing.T, binding string) {
		e := start(t, nil)
		p := gatewaytest.Dial(t, binding, e.addr(binding), gatewaytest.Options{})
		p.Hello(protocol.FlagProxy, protocol.SessionID{})
		// Two clients' sessions on one proxy connection: each event and
		// callback names the session of the call that caused it.
		for _, sid := range []protocol.SessionID{protocol.NewSessionID(), protocol.NewSessionID()} {
			gatewaytest.Result(t, p.Call(gatewaytest.Call{Target: "ticker@1.Ticker.Subscribe", Flags: stateless, Session: sid,
				Args: []any{"x", 2}}), nil)
			for i := 0; i < 2; i++ {
				if f := p.NextWithin(0); f == nil || f.Type != protocol.TypeEvent || f.Session != sid {
					t.Fatalf("event %d: got %s for session %v, want session %s", i, gatewaytest.Describe(f), f, sid)
				}
			}
			_, ch := p.Start(gatewaytest.Call{Target: "ticker@1.Ticker.Each", Flags: stateless, Session: sid,
				Args: []any{1, protocol.CallbackRef(3)}})
			cb := p.Next()
			if cb == nil || cb.Type != protocol.TypeCallback || cb.Session != sid {
				t.Fatalf("got %s, want a CALLBACK for session %s", gatewaytest.Describe(cb), sid)
			}
			body, _ := protocol.Marshal(1)
			_ = p.Send(&protocol.Frame{Type: protocol.TypeCallbackResult, CallID: cb.CallID, Session: sid, Body: body})
			gatewaytest.Result(t, p.Wait(ch), nil)
		}
	})
}
