package client_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/gateway/modules/orders"
	"github.com/graftlb/graftlb/protocol"
)

func TestTypedCalls(t *testing.T) {
	forEachBinding(t, func(t *testing.T, g *gateway.Gateway, target string) {
		c := dial(t, target, client.Options{})
		s := c.Session()

		o, err := client.CallStateless[orders.Order](ctx(t), s, "orders@1.Orders.GetOrder", "o-42")
		if want := orders.Make("o-42", "gw1"); err != nil || o != want {
			t.Fatalf("CallStateless[Order] = %+v, %v; want %+v", o, err, want)
		}
		list, err := client.CallStateless[[]orders.Order](ctx(t), s, "orders@1.Orders.ListOrders", 3)
		if err != nil || len(list) != 3 || list[2] != orders.Make("o-3", "gw1") {
			t.Fatalf("CallStateless[[]Order] = %+v, %v", list, err)
		}
		n, err := client.CallStatic[int](ctx(t), s, "ticker@1.Ticker.Subscribe", "t", 2)
		if err != nil || n != 2 {
			t.Fatalf("CallStatic[int] = %d, %v", n, err)
		}

		obj, err := s.New(ctx(t), "cart@1", "Cart")
		if err != nil {
			t.Fatal(err)
		}
		added, err := client.Call[cart.Added](ctx(t), obj, "AddItem", "apple", int64(120))
		if err != nil || added != (cart.Added{Items: 1, Total: 120, Gateway: "gw1"}) {
			t.Fatalf("Call[Added] = %+v, %v", added, err)
		}
		items, err := client.Call[cart.ItemsResult](ctx(t), obj, "Items")
		if err != nil || len(items.Items) != 1 || items.Items[0] != "apple" {
			t.Fatalf("Call[ItemsResult] = %+v, %v", items, err)
		}
		generic, err := client.Call[map[string]any](ctx(t), obj, "Total")
		if err != nil || generic["total"] != int64(120) {
			t.Fatalf("Call[map[string]any] = %v, %v", generic, err)
		}

		// A result that does not fit T: the call ran, the decoding failed,
		// and the error says so (it is not a protocol error).
		bad, err := client.CallStateless[int](ctx(t), s, "orders@1.Orders.GetOrder", "o-1")
		var pe *client.Error
		if err == nil || bad != 0 || errors.As(err, &pe) || !strings.Contains(err.Error(), "does not decode into int") {
			t.Fatalf("CallStateless[int] of an Order = %d, %v; want a decoding error", bad, err)
		}
		// Errors of the call come through unchanged, with the sentinels.
		if _, err := client.Call[cart.Added](ctx(t), obj, "AddItem", "pear", int64(-1)); !errors.Is(err, client.ErrAppException) {
			t.Fatalf("AddItem with a negative price: %v, want APP_EXCEPTION", err)
		}
		if _, err := client.Call[int](ctx(t), obj, "Nope"); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("unknown method: %v, want NOT_FOUND", err)
		}
	})
}

func TestBadTargetsAreRefusedBeforeSending(t *testing.T) {
	fs := startFake(t)
	c := dial(t, fs.target(), client.Options{})
	fc := fs.next()
	s := c.Session()
	long := strings.Repeat("x", protocol.MaxStringLen+1)
	news := []struct{ module, typ string }{
		{"cart", "Cart"}, {"cart@", "Cart"}, {"@1", "Cart"}, {"ca.rt@1", "Cart"}, {"cart@1@2", "Cart"},
		{"cart@1", ""}, {"cart@1", "Ca.rt"}, {"cart@" + long, "Cart"}, {"cart@1", long},
	}
	for _, n := range news {
		if _, err := s.New(ctx(t), n.module, n.typ); !errors.Is(err, client.ErrBadTarget) {
			t.Errorf("New(%q, %q): %v, want ErrBadTarget", n.module, n.typ, err)
		}
	}
	obj := s.Object("cart@1", "Cart", 1)
	for _, m := range []string{"", "Add.Item", long} {
		if _, err := client.Call[int](ctx(t), obj, m); !errors.Is(err, client.ErrBadTarget) {
			t.Errorf("Call(%q): %v, want ErrBadTarget", m, err)
		}
	}
	for _, target := range []string{"orders.Orders.GetOrder", "orders@1.GetOrder", "orders@1..GetOrder", "a.b@1.T.M"} {
		if _, err := client.CallStateless[int](ctx(t), s, target); !errors.Is(err, client.ErrBadTarget) {
			t.Errorf("CallStateless(%q): %v, want ErrBadTarget", target, err)
		}
		if _, err := s.Call(ctx(t), target); !errors.Is(err, client.ErrBadTarget) {
			t.Errorf("Call(%q): %v, want ErrBadTarget", target, err)
		}
	}
	// Nothing went out: the first frame the server sees is a good call,
	// with a version that has dots.
	done := make(chan error, 1)
	go func() {
		_, err := s.New(ctx(t), "cart@1.2", "Cart")
		done <- err
	}()
	f := fc.read()
	if f.Module != "cart@1.2" || f.TypeName != "Cart" || f.Method != protocol.MethodNew {
		t.Fatalf("first frame %s.%s.%s, want cart@1.2.Cart.$new", f.Module, f.TypeName, f.Method)
	}
	fc.send(&protocol.Frame{Type: protocol.TypeResult, CallID: f.CallID, Object: 1, Body: []byte{0xf6}})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestParseSessionID(t *testing.T) {
	id := protocol.NewSessionID()
	got, err := client.ParseSessionID(id.String())
	if err != nil || got != id {
		t.Fatalf("ParseSessionID(%s) = %v, %v", id, got, err)
	}
	if _, err := client.ParseSessionID("xyz"); err == nil {
		t.Fatal("ParseSessionID accepted xyz")
	}
}
