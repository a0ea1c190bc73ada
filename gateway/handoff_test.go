package gateway_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graftlb/graftlb/affinity"
	"github.com/graftlb/graftlb/gateway"
	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/gateway/modules/cart"
	"github.com/graftlb/graftlb/protocol"
)

// The session handoff of a draining gateway (protocol/SPEC.md section 7,
// Handoff) between in-process gateways on loopback whose pool is a static
// list (discovery's tests run it over gossip).

// box is a movable test object whose Snapshot waits for its gate (closed
// means open), so that a test can hold a session in the middle of its move.
type box struct {
	mu   sync.Mutex
	v    string
	gate *chan struct{}
}

func (b *box) Put(v string) { b.mu.Lock(); b.v = v; b.mu.Unlock() }
func (b *box) Get(ctx context.Context) []string {
	info, _ := gateway.InfoFrom(ctx)
	b.mu.Lock()
	defer b.mu.Unlock()
	return []string{b.v, info.Gateway}
}
func (b *box) Snapshot() ([]byte, error) {
	<-*b.gate
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.v == "unsnappable" {
		return nil, errors.New("cannot")
	}
	return []byte(b.v), nil
}

// pin is an object of a type without Restore: it cannot move.
type pin struct{}

func (*pin) Ping() string { return "pong" }

// moveModule is mv@1: the movable Box and the immovable Pin. gate holds
// Box snapshots until it is closed.
func moveModule(gate *chan struct{}) *gateway.Module {
	return gateway.NewModule("mv", "1").
		Type("Box", func() *box { return &box{gate: gate} }, gateway.Restore(func(b []byte) (*box, error) {
			if string(b) == "bad" {
				return nil, errors.New("bad state")
			}
			if string(b) == "panic" {
				panic("restore bug")
			}
			return &box{v: string(b), gate: gate}, nil
		})).
		Type("Pin", func() *pin { return &pin{} })
}

// pool is gateways that know each other through a static pool.
type pool struct {
	envs []*env
	gate chan struct{}
}

// startPool starts n gateways gw-a, gw-b, ... hosting every module.
func startPool(t *testing.T, n int, mut func(*gateway.Config)) *pool {
	t.Helper()
	p := &pool{gate: make(chan struct{})}
	close(p.gate)
	for i := range n {
		e := start(t, func(c *gateway.Config) {
			c.Name = "gw-" + string(rune('a'+i))
			c.Modules = append(c.Modules, moveModule(&p.gate))
			if mut != nil {
				mut(c)
			}
		})
		p.envs = append(p.envs, e)
	}
	for _, e := range p.envs {
		e.g.SetPool(p.peers)
	}
	return p
}

func (p *pool) peers() []gateway.PeerInfo {
	var out []gateway.PeerInfo
	for _, e := range p.envs {
		if e.g.State() == gateway.StateStopped {
			continue
		}
		a := e.g.Addrs()
		out = append(out, gateway.PeerInfo{Name: e.g.Name(), TCP: a.TCP, WS: a.WS, Weight: 1, Modules: e.g.Modules(),
			Draining: e.g.State() == gateway.StateDraining, TLS: a.TLS})
	}
	return out
}

func (p *pool) byName(name string) *env {
	for _, e := range p.envs {
		if e.g.Name() == name {
			return e
		}
	}
	return nil
}

// nextOwner is the gateway a proxy would look for session id on once
// from is gone: the first other gateway of its preference list.
func nextOwner(t *testing.T, names []string, from string, id protocol.SessionID) string {
	t.Helper()
	tab, err := affinity.NewTable(affinity.UniformMembers(names...))
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range tab.Preference(affinity.HashSession(id), nil) {
		if n := tab.Name(i); n != from {
			return n
		}
	}
	t.Fatal("no other gateway")
	return ""
}

// proxyPeer dials e as a proxy would.
func proxyPeer(t *testing.T, e *env) *gatewaytest.Peer {
	return peerAs(t, e, "test-proxy")
}

// peerAs dials e with a HELLO carrying PROXY and client.
func peerAs(t *testing.T, e *env, client string) *gatewaytest.Peer {
	t.Helper()
	p := gatewaytest.Dial(t, "tcp", e.g.Addrs().TCP, gatewaytest.Options{})
	p.HelloWith(protocol.FlagProxy, protocol.SessionID{}, protocol.Hello{Client: client, Instance: "px1"})
	return p
}

func drain(t *testing.T, e *env) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- e.g.Drain(context.Background()) }()
	eventually(t, "draining", func() bool { return e.g.State() >= gateway.StateDraining })
	return done
}

// nextOfType returns the next frame of type typ from p, skipping others.
func nextOfType(t *testing.T, p *gatewaytest.Peer, typ protocol.Type) *protocol.Frame {
	t.Helper()
	for {
		f := p.Next()
		if f == nil {
			t.Fatalf("no %s frame", typ)
		}
		if f.Type == typ {
			return f
		}
	}
}

// movedFrame returns the next MOVED frame for session sid (every proxy
// connection hears of every moved session).
func movedFrame(t *testing.T, p *gatewaytest.Peer, sid protocol.SessionID) *protocol.Frame {
	t.Helper()
	for {
		if f := nextOfType(t, p, protocol.TypeMoved); f.Session == sid {
			return f
		}
	}
}

// TestHandoffCallDuringMove: a call that arrives while its session moves
// waits for the move and then runs on the new gateway: relayed for a
// proxy, ERROR MOVED with the new address for a direct client.
func TestHandoffCallDuringMove(t *testing.T) {
	forBindings(t, func(t *testing.T, binding string) {
		pl := startPool(t, 2, func(c *gateway.Config) { c.DrainQuiet = time.Second })
		a, b := pl.envs[0], pl.envs[1]
		pl.gate = make(chan struct{}) // snapshots wait from now on
		px := proxyPeer(t, a)
		sp := protocol.NewSessionID()
		pobj := newBox(t, px, sp, "proxied")
		d := a.dial(t, binding)
		dobj := newBox(t, d, protocol.SessionID{}, "direct")

		drained := drain(t, a)
		eventually(t, "both sessions moving", func() bool { return a.g.Stats().SessionsMoving == 2 })
		_, pcall := px.Start(gatewaytest.Call{Target: "mv@1.Box.Get", Session: sp, Object: pobj, Deadline: 10000})
		_, dcall := d.Start(gatewaytest.Call{Target: "mv@1.Box.Get", Object: dobj, Deadline: 10000})
		eventually(t, "calls waiting", func() bool { return a.g.Stats().CallsInFlight == 2 })
		select {
		case f := <-pcall:
			t.Fatalf("call answered during the move: %s", gatewaytest.Describe(f))
		case <-time.After(100 * time.Millisecond):
		}
		close(pl.gate)
		var got []string
		gatewaytest.Result(t, px.Wait(pcall), &got)
		if !slices.Equal(got, []string{"proxied", b.g.Name()}) {
			t.Fatalf("relayed call answered %v", got)
		}
		if f := movedFrame(t, px, sp); f.Session != sp || string(f.Module) != b.g.Name() || f.CallID != 0 || f.Object != 0 || len(f.Body) != 0 {
			t.Fatalf("MOVED frame: session %s module %q call %d object %d body %d", f.Session, f.Module, f.CallID, f.Object, len(f.Body))
		}
		e := gatewaytest.ExpectError(t, d.Wait(dcall), protocol.CodeMoved)
		want := "tcp://" + b.g.Addrs().TCP
		if binding == "ws" {
			want = "ws://" + b.g.Addrs().WS + "/ws"
		}
		if e.Type != want || !strings.Contains(e.Message, b.g.Name()) {
			t.Fatalf("ERROR MOVED %q, exception type %q; want %q", e.Message, e.Type, want)
		}
		if err := <-drained; err != nil {
			t.Fatal(err)
		}
		if s := a.g.Stats(); s.SessionsMoved != 2 || s.SessionsMovedTo[b.g.Name()] != 2 || s.SessionsLostAtDrain != 0 || s.CallsRelayed != 1 {
			t.Fatalf("stats after the drain: %+v", s)
		}
		if s := b.g.Stats(); s.SessionsAdopted != 2 || s.Sessions != 2 {
			t.Fatalf("%s stats: %+v", b.g.Name(), s)
		}
	})
}

func newBox(t *testing.T, p *gatewaytest.Peer, sid protocol.SessionID, v string) uint64 {
	t.Helper()
	f := p.Call(gatewaytest.Call{Target: "mv@1.Box.$new", Session: sid, Flags: newSessionIf(sid)})
	gatewaytest.Result(t, f, nil)
	gatewaytest.Result(t, p.Call(gatewaytest.Call{Target: "mv@1.Box.Put", Session: sid, Object: f.Object, Args: []any{v}}), nil)
	return f.Object
}

func newSessionIf(sid protocol.SessionID) protocol.Flags {
	if sid.IsZero() {
		return 0
	}
	return protocol.FlagNewSession
}

// TestHandoffRelayAfterMove: a proxy's call for a session that moved is
// relayed to the new gateway and answered under the proxy's call id, and a
// MOVED frame comes with it; the drained gateway exits once quiet.
func TestHandoffRelayAfterMove(t *testing.T) {
	pl := startPool(t, 3, func(c *gateway.Config) { c.DrainQuiet = 2 * time.Second })
	a := pl.envs[0]
	px := proxyPeer(t, a)
	sid := protocol.NewSessionID()
	obj := newCart(t, px, gatewaytest.Call{Session: sid, Flags: protocol.FlagNewSession})
	gatewaytest.Result(t, px.Call(gatewaytest.Call{Target: "cart@1.Cart.AddItem", Session: sid, Object: obj, Args: []any{"pen", 150}}), nil)
	drained := drain(t, a)
	f := nextOfType(t, px, protocol.TypeMoved)
	want := nextOwner(t, []string{"gw-a", "gw-b", "gw-c"}, "gw-a", sid)
	if f.Session != sid || string(f.Module) != want {
		t.Fatalf("MOVED session %s to %q, want %s to %s", f.Session, f.Module, sid, want)
	}
	var a2 cart.Added
	gatewaytest.Result(t, px.Call(gatewaytest.Call{Target: "cart@1.Cart.AddItem", Session: sid, Object: obj, Args: []any{"ink", 250}}), &a2)
	if a2 != (cart.Added{Items: 2, Total: 400, Gateway: want}) {
		t.Fatalf("relayed AddItem = %+v, want 2 items, 400, on %s", a2, want)
	}
	if f := nextOfType(t, px, protocol.TypeMoved); f.Session != sid || string(f.Module) != want {
		t.Fatalf("MOVED again: session %s to %q", f.Session, f.Module)
	}
	// The new owner answers directly too, with the call relayed above.
	d := pl.byName(want).dial(t, "tcp")
	var items cart.ItemsResult
	gatewaytest.Result(t, d.Call(gatewaytest.Call{Target: "cart@1.Cart.Items", Session: sid, Object: obj}), &items)
	if !slices.Equal(items.Items, []string{"pen", "ink"}) || items.Gateway != want {
		t.Fatalf("Items on %s = %+v", want, items)
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	if s := a.g.Stats(); s.CallsRelayed != 1 || s.SessionsMoved != 1 || s.CallsServed["cart@1"] != 2 {
		t.Fatalf("stats: %+v (the relayed call counts as relayed, not served)", s)
	}
}

// TestHandoffImmovableLostAtGrace: a session with an object of a type
// without Restore, and one with a callback in flight (a ticker that calls
// back a client that does not answer), stay on the draining gateway; it
// stops at DrainGrace and counts them lost. The movable one moves.
func TestHandoffImmovableLostAtGrace(t *testing.T) {
	pl := startPool(t, 2, func(c *gateway.Config) { c.DrainGrace = 1500 * time.Millisecond })
	a := pl.envs[0]
	px := proxyPeer(t, a)
	pinned := protocol.NewSessionID()
	gatewaytest.Result(t, px.Call(gatewaytest.Call{Target: "mv@1.Pin.$new", Session: pinned, Flags: protocol.FlagNewSession}), nil)
	ticking := protocol.NewSessionID()
	_, each := px.Start(gatewaytest.Call{Target: "ticker@1.Ticker.Each", Session: ticking, Flags: protocol.FlagNewSession,
		Args: []any{3, protocol.CallbackRef(1)}})
	nextOfType(t, px, protocol.TypeCallback) // not answered: the call stays in flight
	movable := protocol.NewSessionID()
	newCart(t, px, gatewaytest.Call{Session: movable, Flags: protocol.FlagNewSession})

	start := time.Now()
	drained := drain(t, a)
	if f := nextOfType(t, px, protocol.TypeMoved); f.Session != movable {
		t.Fatalf("MOVED %s, want the cart's session %s", f.Session, movable)
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 1400*time.Millisecond {
		t.Fatalf("drain ended after %v, before its grace: it dropped sessions that could not move", took)
	}
	_ = each // never answered: its callback was not
	if s := a.g.Stats(); s.SessionsMoved != 1 || s.SessionsLostAtDrain != 2 {
		t.Fatalf("stats: %+v, want 1 moved and 2 lost", s)
	}
}

// TestAdoptRefusals: Adopt calls a gateway must refuse, each with its code
// and the connection kept; then a good one.
func TestAdoptRefusals(t *testing.T) {
	pl := startPool(t, 1, nil)
	b := pl.envs[0]
	px := peerAs(t, b, protocol.HandoffClient) // another gateway's link
	held := protocol.NewSessionID()
	newCart(t, px, gatewaytest.Call{Session: held, Flags: protocol.FlagNewSession})
	body := func(v any) []byte {
		raw, err := protocol.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	snap, _ := cart.New().Snapshot()
	obj := func(id uint64, typ string, state []byte) map[string]any {
		return map[string]any{"id": id, "type": typ, "state": state}
	}
	one := func(objs ...map[string]any) []byte {
		list := []any{}
		for _, o := range objs {
			list = append(list, o)
		}
		return body([]any{map[string]any{"objects": list, "next_object": 5}})
	}
	tests := []struct {
		name    string
		session protocol.SessionID
		body    []byte
		method  string
		code    protocol.Code
	}{
		{"held already", held, one(obj(1, "cart@1.Cart", snap)), "", protocol.CodeBadArgs},
		{"not CBOR", protocol.NewSessionID(), []byte{0xff, 0x00}, "", protocol.CodeBadArgs},
		{"empty body", protocol.NewSessionID(), nil, "", protocol.CodeBadArgs},
		{"no argument", protocol.NewSessionID(), body([]any{}), "", protocol.CodeBadArgs},
		{"two arguments", protocol.NewSessionID(), body([]any{map[string]any{}, map[string]any{}}), "", protocol.CodeBadArgs},
		{"objects not an array", protocol.NewSessionID(), body([]any{map[string]any{"objects": 7}}), "", protocol.CodeBadArgs},
		{"object not a map", protocol.NewSessionID(), body([]any{map[string]any{"objects": []any{"x"}}}), "", protocol.CodeBadArgs},
		{"id 0", protocol.NewSessionID(), one(obj(0, "cart@1.Cart", snap)), "", protocol.CodeBadArgs},
		{"id twice", protocol.NewSessionID(), one(obj(1, "cart@1.Cart", snap), obj(1, "cart@1.Cart", snap)), "", protocol.CodeBadArgs},
		{"id above next", protocol.NewSessionID(), one(obj(9, "cart@1.Cart", snap)), "", protocol.CodeBadArgs},
		{"type without a dot", protocol.NewSessionID(), one(obj(1, "cart", snap)), "", protocol.CodeBadArgs},
		{"unknown type", protocol.NewSessionID(), one(obj(1, "cart@1.Van", snap)), "", protocol.CodeNotFound},
		{"unknown module", protocol.NewSessionID(), one(obj(1, "bus@9.Cart", snap)), "", protocol.CodeNotFound},
		{"type without restore", protocol.NewSessionID(), one(obj(1, "mv@1.Pin", nil)), "", protocol.CodeNotFound},
		{"restore fails", protocol.NewSessionID(), one(obj(1, "mv@1.Box", []byte("bad"))), "", protocol.CodeAppException},
		{"restore panics", protocol.NewSessionID(), one(obj(1, "mv@1.Box", []byte("panic"))), "", protocol.CodeAppException},
		{"cart state garbage", protocol.NewSessionID(), one(obj(1, "cart@1.Cart", []byte{0xff})), "", protocol.CodeAppException},
		{"zero session", protocol.SessionID{}, one(), "", protocol.CodeBadArgs},
		{"unknown method", protocol.NewSessionID(), one(), "Steal", protocol.CodeNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.method
			if m == "" {
				m = "Adopt"
			}
			f := px.Call(gatewaytest.Call{Target: "$handoff@1.Session." + m, Session: tc.session, Body: orEmpty(tc.body)})
			gatewaytest.ExpectError(t, f, tc.code)
		})
	}
	if s := b.g.Stats(); s.Sessions != 1 || s.SessionsAdopted != 0 {
		t.Fatalf("refused adopts left sessions: %+v", s)
	}
	// A direct client may not adopt, nor a proxy (it would be passing on
	// its clients' calls).
	d := b.dial(t, "tcp")
	for _, p := range []*gatewaytest.Peer{d, proxyPeer(t, b)} {
		gatewaytest.ExpectError(t, p.Call(gatewaytest.Call{Target: "$handoff@1.Session.Adopt", Session: protocol.NewSessionID(),
			Body: one(obj(1, "cart@1.Cart", snap))}), protocol.CodeNotFound)
	}
	// The connection still works: a good Adopt, and the cart reads back.
	sid := protocol.NewSessionID()
	state, _ := protocol.Marshal(map[string]any{"items": []string{"a", "b"}, "total": 7})
	gatewaytest.Result(t, px.Call(gatewaytest.Call{Target: "$handoff@1.Session.Adopt", Session: sid, Body: one(obj(4, "cart@1.Cart", state))}), nil)
	var items cart.ItemsResult
	gatewaytest.Result(t, d.Call(gatewaytest.Call{Target: "cart@1.Cart.Items", Session: sid, Object: 4}), &items)
	if !slices.Equal(items.Items, []string{"a", "b"}) {
		t.Fatalf("adopted cart holds %v", items.Items)
	}
	// Object ids go on from next_object.
	f := d.Call(gatewaytest.Call{Target: "cart@1.Cart.$new", Session: sid})
	gatewaytest.Result(t, f, nil)
	if f.Object != 6 {
		t.Fatalf("next object id %d after next_object 5, want 6", f.Object)
	}
	// A draining gateway adopts nothing.
	drained := drain(t, b)
	gatewaytest.ExpectError(t, px.Call(gatewaytest.Call{Target: "$handoff@1.Session.Adopt", Session: protocol.NewSessionID(), Body: one()}), protocol.CodeDraining)
	_ = b.g.Close()
	<-drained
}

func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// TestRestoreRegistration: Restore's signature is checked, and Snapshot is
// not a remote method of a movable type.
func TestRestoreRegistration(t *testing.T) {
	tests := []struct {
		name string
		m    *gateway.Module
		want string
	}{
		{"on Func", gateway.NewModule("m", "1").Func("T", "F", func() {}, gateway.Restore(cart.Restore)), "Restore applies to Type"},
		{"not a function", gateway.NewModule("m", "1").Type("C", cart.New, gateway.Restore(3)), "want a function"},
		{"wrong result", gateway.NewModule("m", "1").Type("C", cart.New, gateway.Restore(func([]byte) (*pin, error) { return nil, nil })), "want func([]byte) (*cart.Cart, error)"},
		{"no Snapshot", gateway.NewModule("m", "1").Type("P", func() *pin { return nil }, gateway.Restore(func([]byte) (*pin, error) { return nil, nil })), "no method Snapshot"},
	}
	for _, tc := range tests {
		if err := tc.m.Err(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
	e := start(t, nil)
	p := e.dial(t, "tcp")
	obj := newCart(t, p, gatewaytest.Call{})
	gatewaytest.ExpectError(t, p.Call(gatewaytest.Call{Target: "cart@1.Cart.Snapshot", Object: obj}), protocol.CodeNotFound)
}

// TestHandoffWholePoolDrains: when no gateway of the pool can take a
// session (all drain), a drained gateway does not wait for its grace: it
// stops once quiet, as without a pool, and counts the session lost.
func TestHandoffWholePoolDrains(t *testing.T) {
	pl := startPool(t, 2, func(c *gateway.Config) { c.DrainGrace = 20 * time.Second })
	a, b := pl.envs[0], pl.envs[1]
	bp := b.dial(t, "tcp")
	// An object that cannot move keeps b draining until its grace.
	gatewaytest.Result(t, bp.Call(gatewaytest.Call{Target: "mv@1.Pin.$new"}), nil)
	bDrained := drain(t, b)
	ap := a.dial(t, "tcp")
	newCart(t, ap, gatewaytest.Call{})
	start := time.Now()
	if err := <-drain(t, a); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("a drained in %v with nowhere to move its cart: it waited for its grace", took)
	}
	if s := a.g.Stats(); s.SessionsMoved != 0 || s.SessionsLostAtDrain != 1 {
		t.Fatalf("a's stats: %+v", s)
	}
	_ = b.g.Close()
	<-bDrained
}
