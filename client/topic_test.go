package client_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/protocol"
)

// expectTopicCall reads a CALL and checks that it is the reserved topic
// call method(topic) of session id, stateful.
func expectTopicCall(t *testing.T, fc *fakeConn, id protocol.SessionID, method, topic string) rawFrame {
	t.Helper()
	f := fc.read()
	if f.Type != protocol.TypeCall || f.Module != client.TopicModule || f.TypeName != "Topic" || f.Method != method {
		t.Fatalf("got %s %s.%s.%s, want CALL %s.Topic.%s", f.Type, f.Module, f.TypeName, f.Method, client.TopicModule, method)
	}
	if f.Session != id {
		t.Fatalf("%s carries session %v, want %v", method, f.Session, id)
	}
	if f.Flags.Has(protocol.FlagStateless) || f.Flags.Has(protocol.FlagOneway) {
		t.Fatalf("%s has flags %#x: want a stateful call with a reply", method, f.Flags)
	}
	if got := f.args(t); !reflect.DeepEqual(got, []any{topic}) {
		t.Fatalf("%s arguments %v, want [%q]", method, got, topic)
	}
	return f
}

func TestSubscribeSendsTopicCallsAndDeliversTopicEvents(t *testing.T) {
	fs := startFake(t)
	c := dial(t, fs.target(), client.Options{})
	fc := fs.next()
	for _, s := range []*client.Session{c.Session(), c.NewSession()} {
		got := make(chan client.Event, 1)
		s.Handle("message", func(e client.Event) { got <- e })

		done := make(chan error, 1)
		go func() { done <- s.Subscribe(ctx(t), "room-1") }()
		call := expectTopicCall(t, fc, s.ID(), "Subscribe", "room-1")
		fc.answer(call, nil)
		if err := <-done; err != nil {
			t.Fatalf("Subscribe: %v", err)
		}

		payload, _ := protocol.Marshal("hello")
		fc.send(&protocol.Frame{Type: protocol.TypeEvent, Session: s.ID(),
			Module: []byte(client.TopicModule), TypeName: []byte("room-1"), Method: []byte("message"), Body: payload})
		select {
		case e := <-got:
			var text string
			topic, ok := e.Topic()
			if !ok || topic != "room-1" || e.Name != "message" || e.Object != 0 || e.Decode(&text) != nil || text != "hello" {
				t.Fatalf("topic event %+v (topic %q %v, text %q)", e, topic, ok, text)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the topic event never reached the handler")
		}

		go func() { done <- s.Unsubscribe(ctx(t), "room-1") }()
		call = expectTopicCall(t, fc, s.ID(), "Unsubscribe", "room-1")
		fc.answer(call, nil)
		if err := <-done; err != nil {
			t.Fatalf("Unsubscribe: %v", err)
		}
	}
}

// A proxy answers the topic calls itself: the answer does not show that a
// fresh session exists on a gateway, so its first real call must still
// carry NEW_SESSION.
func TestSubscribeKeepsAFreshSessionFresh(t *testing.T) {
	fs := startFake(t)
	c := dial(t, fs.target(), client.Options{})
	fc := fs.next()
	s := c.NewSession()
	done := make(chan error, 1)
	go func() { done <- s.Subscribe(ctx(t), "news") }()
	fc.answer(expectTopicCall(t, fc, s.ID(), "Subscribe", "news"), nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := s.Call(ctx(t), "cart@1.Cart.Count")
		done <- err
	}()
	f := fc.read()
	if !f.Flags.Has(protocol.FlagNewSession) {
		t.Fatalf("first call after Subscribe has flags %#x, want NEW_SESSION", f.Flags)
	}
	fc.answer(f, 1)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSubscribeRefusesBadTopics(t *testing.T) {
	fs := startFake(t)
	c := dial(t, fs.target(), client.Options{})
	fc := fs.next()
	for _, topic := range []string{"", strings.Repeat("x", client.MaxTopicLen+1), "bad\xffutf8"} {
		if err := c.Session().Subscribe(ctx(t), topic); !errors.Is(err, client.ErrBadTarget) {
			t.Errorf("Subscribe(%q): %v, want ErrBadTarget", topic, err)
		}
	}
	// Nothing was sent: the first frame the server sees is the next call.
	done := make(chan error, 1)
	topic := strings.Repeat("y", client.MaxTopicLen)
	go func() { done <- c.Session().Subscribe(ctx(t), topic) }()
	fc.answer(expectTopicCall(t, fc, c.Session().ID(), "Subscribe", topic), nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSubscribeAgainAfterReconnect(t *testing.T) {
	fs := startFake(t)
	c := dial(t, fs.target(), client.Options{AutoReconnect: true})
	fc := fs.next()
	s := c.Session()
	done := make(chan error, 1)
	for _, topic := range []string{"a", "b"} {
		go func() { done <- s.Subscribe(ctx(t), topic) }()
		fc.answer(expectTopicCall(t, fc, s.ID(), "Subscribe", topic), nil)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	go func() { done <- s.Unsubscribe(ctx(t), "b") }()
	fc.answer(expectTopicCall(t, fc, s.ID(), "Unsubscribe", "b"), nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	fc.pc.Abort() // the server goes away; the client redials and resumes
	fc2 := fs.next()
	if !fc2.hello.Flags.Has(protocol.FlagResume) || fc2.hello.Session != s.ID() {
		t.Fatalf("reconnect HELLO flags %#x session %v, want RESUME of %v", fc2.hello.Flags, fc2.hello.Session, s.ID())
	}
	// Only "a" is renewed; "b" was given up.
	fc2.answer(expectTopicCall(t, fc2, s.ID(), "Subscribe", "a"), nil)
	go func() {
		_, err := s.CallStateless(context.Background(), "orders@1.Orders.GetOrder", "o-1")
		done <- err
	}()
	f := fc2.read()
	if f.Method != "GetOrder" {
		t.Fatalf("after the renewal got %s.%s.%s, want only topic a renewed then GetOrder", f.Module, f.TypeName, f.Method)
	}
	fc2.answer(f, "ok")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
