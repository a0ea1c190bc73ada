package gateway_test

import (
	"strings"
	"testing"

	"github.com/graftlb/graftlb/gateway/gatewaytest"
	"github.com/graftlb/graftlb/protocol"
)

const (
	topicSubscribe   = "$topic@1.Topic.Subscribe"
	topicUnsubscribe = "$topic@1.Topic.Unsubscribe"
)

// subscribe subscribes the peer's session (or session) to topic.
func subscribe(t *testing.T, p *gatewaytest.Peer, session protocol.SessionID, topic string) {
	t.Helper()
	f := p.Call(gatewaytest.Call{Target: topicSubscribe, Session: session, Args: []any{topic}})
	gatewaytest.Result(t, f, nil)
	if len(f.Body) != 1 || f.Body[0] != 0xf6 || f.Object != 0 {
		t.Fatalf("Subscribe RESULT: body %x object %d, want CBOR null, object 0", f.Body, f.Object)
	}
}

// expectTopicEvent reads the next frame and checks that it is the topic
// EVENT topic/event with payload want, for session.
func expectTopicEvent(t *testing.T, p *gatewaytest.Peer, session protocol.SessionID, topic, event, want string) {
	t.Helper()
	expectTopicEvents(t, p, []protocol.SessionID{session}, topic, event, want)
}

// expectTopicEvents reads one topic EVENT per session of sessions, in any
// order: a connection's subscribed sessions are not ordered.
func expectTopicEvents(t *testing.T, p *gatewaytest.Peer, sessions []protocol.SessionID, topic, event, want string) {
	t.Helper()
	left := map[protocol.SessionID]bool{}
	for _, s := range sessions {
		left[s] = true
	}
	for range sessions {
		session := expectOneTopicEvent(t, p, topic, event, want)
		if !left[session] {
			t.Fatalf("topic EVENT for session %s: not subscribed, or twice (want %v)", session, sessions)
		}
		delete(left, session)
	}
}

func expectOneTopicEvent(t *testing.T, p *gatewaytest.Peer, topic, event, want string) protocol.SessionID {
	t.Helper()
	f := p.Next()
	if f == nil || f.Type != protocol.TypeEvent {
		t.Fatalf("got %s, want a topic EVENT", gatewaytest.Describe(f))
	}
	var got string
	if err := protocol.Unmarshal(f.Body, &got); err != nil {
		t.Fatal(err)
	}
	if f.Object != 0 || f.CallID != 0 || string(f.Module) != "$topic@1" || string(f.TypeName) != topic ||
		string(f.Method) != event || got != want {
		t.Fatalf("topic EVENT object %d module %q type %q method %q payload %q; want $topic@1, %q, %q, %q",
			f.Object, f.Module, f.TypeName, f.Method, got, topic, event, want)
	}
	return f.Session
}

// expectNothingQueued checks that no frame was queued for p before now: a
// PING's PONG is the next frame.
func expectNothingQueued(t *testing.T, p *gatewaytest.Peer, what string) {
	t.Helper()
	_ = p.Send(&protocol.Frame{Type: protocol.TypePing, CallID: 77})
	if f := p.Next(); f == nil || f.Type != protocol.TypePong || f.CallID != 77 {
		t.Fatalf("%s: got %s, want nothing before the PONG", what, gatewaytest.Describe(f))
	}
}

// TestTopicDirectSubscribers: sessions of two direct clients subscribed
// to a topic both receive what the gateway publishes (from its API and
// from a method's context); an unsubscribed session and a third client
// receive nothing.
func TestTopicDirectSubscribers(t *testing.T) {
	forBindings(t, func(t *testing.T, binding string) {
		e := start(t, nil)
		var peers []*gatewaytest.Peer
		var sessions []protocol.SessionID
		for i := 0; i < 3; i++ {
			p := gatewaytest.Dial(t, binding, e.addr(binding), gatewaytest.Options{})
			w, _ := p.Hello(0, protocol.SessionID{})
			peers, sessions = append(peers, p), append(sessions, w.Session)
		}
		subscribe(t, peers[0], protocol.SessionID{}, "room")
		subscribe(t, peers[1], protocol.SessionID{}, "room")
		subscribe(t, peers[1], protocol.SessionID{}, "room") // twice is once
		other := protocol.NewSessionID()                     // a second session on peer 1's connection
		subscribe(t, peers[1], other, "room")
		subscribe(t, peers[2], protocol.SessionID{}, "hall")
		if n := e.g.Stats().Subscriptions; n != 4 {
			t.Fatalf("Stats.Subscriptions = %d, want 4", n)
		}

		if err := e.g.Publish("room", "msg", "hello"); err != nil {
			t.Fatal(err)
		}
		expectTopicEvent(t, peers[0], sessions[0], "room", "msg", "hello")
		expectTopicEvents(t, peers[1], []protocol.SessionID{sessions[1], other}, "room", "msg", "hello")
		for i, p := range peers {
			expectNothingQueued(t, p, "after one Publish, peer "+string(rune('0'+i)))
		}

		gatewaytest.Result(t, peers[1].Call(gatewaytest.Call{Target: topicUnsubscribe, Args: []any{"room"}}), nil)
		gatewaytest.Result(t, peers[1].Call(gatewaytest.Call{Target: topicUnsubscribe, Args: []any{"nothing"}}), nil)
		// Published from a method: the caller, peer 2, is not subscribed.
		gatewaytest.Result(t, peers[2].Call(gatewaytest.Call{Target: "test@1.T.Say", Flags: stateless, Args: []any{"room", "hi"}}), nil)
		expectTopicEvent(t, peers[0], sessions[0], "room", "said", "hi")
		expectTopicEvent(t, peers[1], other, "room", "said", "hi")
		for _, p := range peers {
			expectNothingQueued(t, p, "after Unsubscribe")
		}

		// A subscription ends with its connection.
		peers[0].Close()
		peers[1].Abort()
		eventually(t, "subscriptions of closed connections dropped", func() bool { return e.g.Stats().Subscriptions == 1 })
	})
}

// TestTopicToProxies: a proxy connection (HELLO with PROXY) gets one topic
// EVENT, with the zero session id, per proxy instance: one of the two
// connections of instance "aa", the one of "bb", and each connection whose
// HELLO named no instance. A direct subscriber gets its own.
func TestTopicToProxies(t *testing.T) {
	e := start(t, nil)
	dial := func(instance string) *gatewaytest.Peer {
		p := gatewaytest.Dial(t, "tcp", e.addr("tcp"), gatewaytest.Options{})
		p.HelloWith(protocol.FlagProxy, protocol.SessionID{}, protocol.Hello{Client: "proxy", Instance: instance})
		return p
	}
	a1, a2, b, none1, none2 := dial("aa"), dial("aa"), dial("bb"), dial(""), dial("")
	direct := gatewaytest.Dial(t, "tcp", e.addr("tcp"), gatewaytest.Options{})
	w, _ := direct.Hello(0, protocol.SessionID{})
	subscribe(t, direct, protocol.SessionID{}, "news")

	for round := 0; round < 3; round++ {
		if err := e.g.Publish("news", "flash", "v"); err != nil {
			t.Fatal(err)
		}
		zero := protocol.SessionID{}
		for _, p := range []*gatewaytest.Peer{b, none1, none2} {
			expectTopicEvent(t, p, zero, "news", "flash", "v")
		}
		// Exactly one of a1, a2 has it.
		got := 0
		for _, p := range []*gatewaytest.Peer{a1, a2} {
			_ = p.Send(&protocol.Frame{Type: protocol.TypePing, CallID: 5})
			for f := p.Next(); f == nil || f.Type != protocol.TypePong; f = p.Next() {
				if f == nil {
					t.Fatal("no PONG")
				}
				if f.Type != protocol.TypeEvent || !f.Session.IsZero() || string(f.TypeName) != "news" {
					t.Fatalf("instance aa got %s", gatewaytest.Describe(f))
				}
				got++
			}
		}
		if got != 1 {
			t.Fatalf("round %d: the two connections of instance aa got %d topic EVENTs, want 1", round, got)
		}
		expectTopicEvent(t, direct, w.Session, "news", "flash", "v")
		for _, p := range []*gatewaytest.Peer{b, none1, none2, direct} {
			expectNothingQueued(t, p, "one topic EVENT per instance")
		}
	}
	// Without its first connection, instance aa still gets each EVENT once.
	a1.Close()
	eventually(t, "connection closed", func() bool { return e.g.Stats().Connections == 5 })
	if err := e.g.Publish("news", "flash", "v"); err != nil {
		t.Fatal(err)
	}
	expectTopicEvent(t, a2, protocol.SessionID{}, "news", "flash", "v")
	expectNothingQueued(t, a2, "after the other connection of aa closed")

	// A proxy answers $topic@1 itself; one that forwards it is told so.
	e1 := gatewaytest.ExpectError(t, b.Call(gatewaytest.Call{Target: topicSubscribe, Session: protocol.NewSessionID(), Args: []any{"x"}}),
		protocol.CodeNotFound)
	if !strings.Contains(e1.Message, "proxy") {
		t.Fatalf("message %q", e1.Message)
	}
}

// TestTopicBadInput: malformed topic calls get a clear error and the
// connection stays open; the per-connection limit holds; reserved event
// names are refused from modules.
func TestTopicBadInput(t *testing.T) {
	e := start(t, func(c *gatewayConfig) { c.MaxSubscriptions = 2 })
	p := e.dial(t, "tcp")
	tests := []struct {
		name string
		call gatewaytest.Call
		want protocol.Code
	}{
		{"empty topic", gatewaytest.Call{Target: topicSubscribe, Args: []any{""}}, protocol.CodeBadArgs},
		{"topic over 255 bytes", gatewaytest.Call{Target: topicSubscribe, Args: []any{strings.Repeat("t", 256)}}, protocol.CodeBadArgs},
		{"topic not text", gatewaytest.Call{Target: topicSubscribe, Args: []any{42}}, protocol.CodeBadArgs},
		{"invalid UTF-8", gatewaytest.Call{Target: topicSubscribe, Body: []byte{0x81, 0x62, 0xff, 0xfe}}, protocol.CodeBadArgs},
		{"two arguments", gatewaytest.Call{Target: topicSubscribe, Args: []any{"a", "b"}}, protocol.CodeBadArgs},
		{"not an array", gatewaytest.Call{Target: topicSubscribe, Body: []byte{0x01}}, protocol.CodeBadArgs},
		{"object id", gatewaytest.Call{Target: topicSubscribe, Object: 3, Args: []any{"a"}}, protocol.CodeBadArgs},
		{"unknown method", gatewaytest.Call{Target: "$topic@1.Topic.Publish", Args: []any{"a"}}, protocol.CodeNotFound},
		{"unknown type", gatewaytest.Call{Target: "$topic@1.Room.Subscribe", Args: []any{"a"}}, protocol.CodeNotFound},
		{"other reserved module", gatewaytest.Call{Target: "$other@1.Topic.Subscribe", Args: []any{"a"}}, protocol.CodeNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { gatewaytest.ExpectError(t, p.Call(tc.call), tc.want) })
	}
	subscribe(t, p, protocol.SessionID{}, "a")
	subscribe(t, p, protocol.SessionID{}, "b")
	gatewaytest.ExpectError(t, p.Call(gatewaytest.Call{Target: topicSubscribe, Args: []any{"c"}}), protocol.CodeOverloaded)
	subscribe(t, p, protocol.SessionID{}, "a") // already held: not a third
	// ONEWAY: no reply, but it takes effect.
	_ = p.Send(p.Frame(gatewaytest.Call{Target: topicUnsubscribe, Flags: protocol.FlagOneway, Args: []any{"b"}}))
	eventually(t, "ONEWAY Unsubscribe", func() bool { return e.g.Stats().Subscriptions == 1 })
	expectNothingQueued(t, p, "after a ONEWAY Unsubscribe")

	for _, tc := range []struct{ topic, event string }{{"", "e"}, {strings.Repeat("t", 256), "e"}, {"\xff", "e"},
		{"t", ""}, {"t", "$session_lost"}, {"t", strings.Repeat("e", 256)}} {
		if err := e.g.Publish(tc.topic, tc.event, nil); err == nil {
			t.Errorf("Publish(%q, %q) succeeded", tc.topic, tc.event)
		}
	}
	if err := e.g.Publish("t", "e", make(chan int)); err == nil {
		t.Error("Publish of a value CBOR cannot encode succeeded")
	}
	if err := e.g.Publish("t", "e", strings.Repeat("x", 1<<20)); err == nil {
		t.Error("Publish of a frame over MaxFrame succeeded")
	}
	pe := gatewaytest.ExpectError(t, p.Call(gatewaytest.Call{Target: "test@1.T.EmitReserved", Flags: stateless}), protocol.CodeAppException)
	if !strings.Contains(pe.Message, "reserved") {
		t.Fatalf("Emit of a $ name: %q", pe.Message)
	}
	_ = e.g.Close()
	if err := e.g.Publish("t", "e", 1); err == nil {
		t.Error("Publish after Close succeeded")
	}
}
