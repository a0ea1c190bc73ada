package client_test

import (
	"context"
	"sync"
	"testing"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/modules/ticker"
	"github.com/graftlb/graftlb/internal/testgw"
	"github.com/graftlb/graftlb/protocol"
)

// room@1 is a test module whose objects emit events: Room.Say(text) emits
// "said" with the text, Room.Ping() emits "pinged" with the room's name.
type room struct{ name string }

func (r *room) Say(ctx context.Context, text string) error { return gateway.Emit(ctx, "said", text) }
func (r *room) Ping(ctx context.Context) error             { return gateway.Emit(ctx, "pinged", r.name) }

func roomModule() *gateway.Module {
	return gateway.NewModule("room", "1").Type("Room", func(name string) *room { return &room{name: name} })
}

func startRoomGateway(t *testing.T) string {
	g := testgw.Start(t, "gw1", func(c *gateway.Config) { c.Modules = append(c.Modules, roomModule()) })
	return testgw.Targets(g)["tcp"]
}

// recorder collects what handlers receive, by handler.
type recorder struct {
	mu  sync.Mutex
	got map[string][]string
}

func (r *recorder) handler(name string) func(client.Event) {
	return func(e client.Event) {
		var v string
		_ = e.Decode(&v)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.got == nil {
			r.got = map[string][]string{}
		}
		r.got[name] = append(r.got[name], e.Name+":"+v)
	}
}

func (r *recorder) take() map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.got
	r.got = nil
	return g
}

func TestEventHandlersPerObjectAndName(t *testing.T) {
	c := dial(t, startRoomGateway(t), client.Options{})
	s := c.Session()
	a, err := s.New(ctx(t), "room@1", "Room", "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.New(ctx(t), "room@1", "Room", "b")
	if err != nil {
		t.Fatal(err)
	}
	var rec recorder
	a.OnEvent("said", rec.handler("a/said"))
	b.OnEvent("", rec.handler("b/*"))
	s.Handle("pinged", rec.handler("pinged"))
	s.OnEvent(rec.handler("*"))

	// Events a method emits come before its RESULT, and handlers run as
	// they are read: each call's events have been handled when it returns.
	steps := []struct {
		obj    *client.Object
		method string
		args   []any
		want   map[string][]string
	}{
		{a, "Say", []any{"x"}, map[string][]string{"a/said": {"said:x"}, "*": {"said:x"}}},
		{a, "Ping", nil, map[string][]string{"pinged": {"pinged:a"}, "*": {"pinged:a"}}},
		{b, "Say", []any{"y"}, map[string][]string{"b/*": {"said:y"}, "*": {"said:y"}}},
		{b, "Ping", nil, map[string][]string{"b/*": {"pinged:b"}, "pinged": {"pinged:b"}, "*": {"pinged:b"}}},
	}
	for _, st := range steps {
		if _, err := st.obj.Call(ctx(t), st.method, st.args...); err != nil {
			t.Fatal(err)
		}
		if got := rec.take(); !equalRecords(got, st.want) {
			t.Errorf("object %d %s: handlers got %v, want %v", st.obj.ID(), st.method, got, st.want)
		}
	}

	// Removing handlers: nil.
	a.OnEvent("said", nil)
	s.OnEvent(nil)
	if _, err := a.Call(ctx(t), "Say", "z"); err != nil {
		t.Fatal(err)
	}
	if got := rec.take(); len(got) != 0 {
		t.Errorf("after removing the handlers: %v", got)
	}
}

func equalRecords(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w := b[k]
		if len(v) != len(w) {
			return false
		}
		for i := range v {
			if v[i] != w[i] {
				return false
			}
		}
	}
	return true
}

// A stream whose consumer does not read fills up and drops; the calls and
// the other consumers of the same connection go on.
func TestBlockedEventStreamDoesNotStallCalls(t *testing.T) {
	forEachBinding(t, func(t *testing.T, g *gateway.Gateway, target string) {
		c := dial(t, target, client.Options{})
		s := c.Session()
		stuck := s.Events(4)  // never read until the end
		full := s.Events(500) // large enough for everything
		const n = 300
		res, err := client.CallStatic[int](ctx(t), s, "ticker@1.Ticker.Subscribe", "t", n)
		if err != nil || res != n {
			t.Fatalf("Subscribe with a stuck stream: %d, %v", res, err)
		}
		if _, err := s.CallStateless(ctx(t), "orders@1.Orders.GetOrder", "o-1"); err != nil {
			t.Fatal(err)
		}
		if d := stuck.Dropped(); d != n-4 {
			t.Errorf("stuck stream dropped %d, want %d", d, n-4)
		}
		if d := full.Dropped(); d != 0 || len(full.C) != n {
			t.Errorf("full stream: %d buffered, %d dropped; want %d, 0", len(full.C), d, n)
		}
		stuck.Close()
		var seqs []int
		for e := range stuck.C { // closed: the buffered events, then the end
			var tick ticker.Tick
			if err := e.Decode(&tick); err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, tick.Seq)
		}
		if len(seqs) != 4 || seqs[0] != 0 || seqs[3] != 3 {
			t.Errorf("stuck stream kept %v, want the first 4 ticks", seqs)
		}
		_ = c.Close()
		got := 0
		for range full.C { // Close ends every stream
			got++
		}
		if got != n {
			t.Errorf("full stream delivered %d, want %d", got, n)
		}
		if _, open := <-s.Events(1).C; open {
			t.Error("a stream opened after Close is open")
		}
	})
}

// Release removes the object's handlers: an event for its id (from a
// gateway that reuses ids, say) reaches only the session's handlers.
func TestReleaseDropsObjectHandlers(t *testing.T) {
	fs := startFake(t)
	c := dial(t, fs.target(), client.Options{})
	fc := fs.next()
	s := c.Session()
	obj := s.Object("room@1", "Room", 7)
	var rec recorder
	obj.OnEvent("", rec.handler("obj"))
	s.OnEvent(rec.handler("*"))
	said, _ := protocol.Marshal("x")
	event := &protocol.Frame{Type: protocol.TypeEvent, Session: s.ID(), Object: 7,
		Module: []byte("room@1"), TypeName: []byte("Room"), Method: []byte("said"), Body: said}
	ping := func() { // a round trip: the events sent before it are handled
		done := make(chan error, 1)
		go func() {
			_, err := s.CallStateless(ctx(t), "orders@1.Orders.GetOrder", "o-1")
			done <- err
		}()
		fc.answer(fc.read(), "ok")
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	fc.send(event)
	ping()
	if got, want := rec.take(), map[string][]string{"obj": {"said:x"}, "*": {"said:x"}}; !equalRecords(got, want) {
		t.Fatalf("before Release: %v, want %v", got, want)
	}
	done := make(chan error, 1)
	go func() { done <- obj.Release(ctx(t)) }()
	f := fc.read()
	if f.Method != protocol.MethodRelease || f.Object != 7 {
		t.Fatalf("Release sent %+v", f)
	}
	fc.answer(f, nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	fc.send(event)
	ping()
	if got, want := rec.take(), map[string][]string{"*": {"said:x"}}; !equalRecords(got, want) {
		t.Fatalf("after Release: %v, want %v", got, want)
	}
}
