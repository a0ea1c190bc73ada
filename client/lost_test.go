package client_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/protocol"
)

func sessionLostNotice(id protocol.SessionID, msg string) *protocol.Frame {
	return &protocol.Frame{Type: protocol.TypeEvent, Session: id, Method: []byte(client.MethodSessionLost),
		Body: protocol.AppendErrorBody(nil, protocol.CodeSessionLost, msg, "")}
}

func TestSessionLostNotice(t *testing.T) {
	fs := startFake(t)
	c := dial(t, fs.target(), client.Options{})
	fc := fs.next()
	s := c.NewSession()
	stream := s.Events(8)
	var events atomic.Int32
	s.OnEvent(func(client.Event) { events.Add(1) })
	lost := make(chan error, 4)
	// The handler calls through the same connection: it runs off the
	// reader goroutine, so that cannot deadlock.
	s.OnLost(func(err error) {
		_, cerr := c.Session().CallStateless(ctx(t), "orders@1.Orders.GetOrder", "after-loss")
		lost <- errors.Join(err, cerr)
	})

	fc.send(sessionLostNotice(s.ID(), "gateway gw2 died"))
	f := fc.read() // the handler's call
	if f.Method != "GetOrder" || !f.Session.IsZero() {
		t.Fatalf("OnLost handler's call: %+v", f)
	}
	fc.answer(f, "ok")
	var err error
	select {
	case err = <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("OnLost handler not called")
	}
	if !errors.Is(err, client.ErrSessionLost) || !strings.Contains(err.Error(), "gateway gw2 died") {
		t.Fatalf("OnLost got %v, want SESSION_LOST: gateway gw2 died", err)
	}
	var pe *client.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeSessionLost {
		t.Fatalf("OnLost error %v is not a *client.Error SESSION_LOST", err)
	}
	if n := events.Load(); n != 0 {
		t.Fatalf("the notice reached the event handler %d times", n)
	}
	if _, open := <-stream.C; open {
		t.Fatal("the lost session's event stream is still open")
	}
	if !errors.Is(s.Err(), client.ErrSessionLost) || c.Session().Err() != nil {
		t.Fatalf("Err: lost session %v, connection's session %v", s.Err(), c.Session().Err())
	}

	// A second notice calls no handler again.
	fc.send(sessionLostNotice(s.ID(), "again"))

	// Stateful calls fail at once, without a frame sent; a stateless call
	// still goes out.
	if _, err := s.New(ctx(t), "cart@1", "Cart"); !errors.Is(err, client.ErrSessionLost) {
		t.Fatalf("New in a lost session: %v, want SESSION_LOST", err)
	}
	if err := s.Subscribe(ctx(t), "t"); !errors.Is(err, client.ErrSessionLost) {
		t.Fatalf("Subscribe in a lost session: %v, want SESSION_LOST", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.CallStateless(ctx(t), "orders@1.Orders.GetOrder", "o-1")
		done <- err
	}()
	f = fc.read()
	if f.Method != "GetOrder" || f.Session != s.ID() || !f.Flags.Has(protocol.FlagStateless) {
		t.Fatalf("first frame after the refused calls: %+v, want the stateless GetOrder", f)
	}
	fc.answer(f, "ok")
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A handler registered after the loss runs at once, once.
	s.OnLost(func(err error) { lost <- err })
	select {
	case err := <-lost:
		if !errors.Is(err, client.ErrSessionLost) {
			t.Fatalf("late OnLost got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("late OnLost handler not called")
	}
	_ = c.Close()
	if len(lost) != 0 {
		t.Fatalf("%d more OnLost calls after the first", len(lost))
	}
}

// A call answered SESSION_LOST marks the session lost too: the client
// learns it either way, and tells the OnLost handlers.
func TestSessionLostReply(t *testing.T) {
	fs := startFake(t)
	c := dial(t, fs.target(), client.Options{})
	fc := fs.next()
	s := c.ResumeSession(protocol.NewSessionID())
	lost := make(chan error, 1)
	s.OnLost(func(err error) { lost <- err })
	done := make(chan error, 1)
	go func() {
		_, err := s.Call(ctx(t), "cart@1.Cart.Count")
		done <- err
	}()
	f := fc.read()
	fc.send(&protocol.Frame{Type: protocol.TypeError, CallID: f.CallID, Session: f.Session,
		Body: protocol.AppendErrorBody(nil, protocol.CodeSessionLost, "no such session", "")})
	if err := <-done; !errors.Is(err, client.ErrSessionLost) {
		t.Fatalf("call: %v, want SESSION_LOST", err)
	}
	select {
	case err := <-lost:
		if !errors.Is(err, client.ErrSessionLost) {
			t.Fatalf("OnLost got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnLost handler not called")
	}
	if _, err := s.Call(ctx(t), "cart@1.Cart.Count"); !errors.Is(err, client.ErrSessionLost) {
		t.Fatalf("second call: %v, want SESSION_LOST at once", err)
	}
}
