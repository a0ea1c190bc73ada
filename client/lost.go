package client

import (
	"github.com/graftlb/graftlb/protocol"
)

// MethodSessionLost is the reserved event name of a session-lost notice: a
// proxy (or gateway) sends an EVENT with this name, an empty module and
// type, and an ERROR body (SPEC.md section 6) for a session whose gateway
// died. The client does not show it as an Event: it marks the session
// lost and calls the OnLost handlers.
const MethodSessionLost = protocol.EventSessionLost

// OnLost registers fn to be called once, with an error matching
// ErrSessionLost, when the session is known lost: a session-lost notice
// came, or a stateful call was answered SESSION_LOST. From then on the
// session's stateful calls fail at once with that error (stateless calls
// still go out: they need no session state), its streams are closed and
// its subscriptions are gone. fn runs on a goroutine of its own, so it may
// call through the connection (to start another session, say); Conn.Close
// waits for it. Registered after the loss, fn is called at once, on a
// goroutine of its own too.
func (s *Session) OnLost(fn func(err error)) {
	if fn == nil {
		return
	}
	s.mu.Lock()
	err := s.lost.Load()
	if err == nil {
		s.onLost = append(s.onLost, fn)
	}
	s.mu.Unlock()
	if err != nil {
		s.c.goRun(func() { fn(err) })
	}
}

// Err returns the SESSION_LOST error once the session is known lost, nil
// before.
func (s *Session) Err() error {
	if err := s.lost.Load(); err != nil {
		return err
	}
	return nil
}

// lose marks the session lost, once; pe is what the gateway or proxy said
// (nil or any code: the session is lost all the same).
func (s *Session) lose(pe *protocol.Error) {
	err := &protocol.Error{Code: protocol.CodeSessionLost, Message: "session lost"}
	if pe != nil && pe.Message != "" {
		err.Message = pe.Message
	}
	s.mu.Lock()
	if !s.lost.CompareAndSwap(nil, err) {
		s.mu.Unlock()
		return
	}
	fns := s.onLost
	s.onLost = nil
	s.topics = nil
	s.mu.Unlock()
	s.closeStreams()
	s.c.opts.Logger.Debug().Stringer("session", s.id).Str("reason", err.Message).Msg("session lost")
	if len(fns) > 0 {
		s.c.goRun(func() {
			for _, fn := range fns {
				fn(err)
			}
		})
	}
}

// goRun runs fn on a goroutine that Close waits for; after Close it runs
// fn in the caller's goroutine instead (the WaitGroup must not grow then).
func (c *Conn) goRun(fn func()) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		fn()
		return
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		fn()
	}()
}
