package client

import (
	"sync/atomic"

	"github.com/graftlb/graftlb/protocol"
)

// Event is an EVENT pushed to a session: by a method of the session's
// gateway (gateway.Emit), or published to a topic the session subscribed
// to (Session.Subscribe).
type Event struct {
	// Module and Type name the emitting method's module@version and type;
	// for a topic event, Module is TopicModule and Type is the topic.
	Module string
	Type   string
	// Name is the event's name.
	Name string
	// Object is the instance whose method emitted the event; 0 for static
	// methods, constructors and topics.
	Object uint64
	// Payload is the event's CBOR data item. It stays valid after the
	// handler returns, but every handler and stream the event reaches
	// shares it: do not modify it.
	Payload []byte
}

// Decode decodes the payload into v.
func (e Event) Decode(v any) error { return protocol.Unmarshal(e.Payload, v) }

// Topic returns the topic of a topic event; ok is false for other events.
func (e Event) Topic() (topic string, ok bool) {
	if e.Module != TopicModule {
		return "", false
	}
	return e.Type, true
}

// DefaultEventBuffer is the buffer of a stream that Events(0) returns.
const DefaultEventBuffer = 256

// OnEvent sets the session's catch-all handler, which receives every event
// of the session (nil removes it), as Handle describes. It is Handle("", fn).
func (s *Session) OnEvent(fn func(Event)) { s.Handle("", fn) }

// Handle sets the session's handler for events named name, whichever
// module, object or topic sends them; name "" is the catch-all of OnEvent.
// nil removes the handler; a later Handle of the same name replaces it.
//
// An event reaches every stream of its session (Events), then, in this
// order, each of these that is set: the handler of its object and name and
// that of its object for every name (Object.OnEvent), the session's handler
// of its name, and the catch-all. Handlers run on the connection's reader
// goroutine, one event at a time in arrival order: while one runs, no reply
// or event of that connection is read, so a handler must return quickly and
// must not wait for a call of the same connection. Hand slow work to a
// goroutine, or use a stream.
func (s *Session) Handle(name string, fn func(Event)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fn == nil {
		delete(s.byName, name)
		return
	}
	if s.byName == nil {
		s.byName = make(map[string]func(Event))
	}
	s.byName[name] = fn
}

type objectEvent struct {
	object uint64
	name   string
}

// OnEvent sets the handler for the events named name that the object's
// methods emit; name "" receives all of them. nil removes the handler;
// Release removes all of the object's handlers. Handlers run as
// Session.Handle describes.
func (o *Object) OnEvent(name string, fn func(Event)) {
	s := o.s
	k := objectEvent{o.id, name}
	s.mu.Lock()
	defer s.mu.Unlock()
	if fn == nil {
		delete(s.byObject, k)
		return
	}
	if s.byObject == nil {
		s.byObject = make(map[objectEvent]func(Event))
	}
	s.byObject[k] = fn
}

func (s *Session) forgetObject(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.byObject {
		if k.object == id {
			delete(s.byObject, k)
		}
	}
}

// EventStream is a buffered channel of a session's events, for consumers
// that may block. The connection's reader never waits for it: an event
// that finds the buffer full is dropped, and counted by Dropped.
type EventStream struct {
	// C delivers the events. It is closed by Close, when the session is
	// lost, forgotten (Conn.ForgetSession) or its Conn is closed.
	C <-chan Event

	s       *Session
	ch      chan Event
	dropped atomic.Uint64
	closed  bool // guarded by s.mu
}

// Events returns a stream of every event of the session, buffering up to
// buffer events (DefaultEventBuffer if buffer ≤ 0). Memory is bounded by
// buffer times the largest frame the connection accepts.
func (s *Session) Events(buffer int) *EventStream {
	if buffer <= 0 {
		buffer = DefaultEventBuffer
	}
	ch := make(chan Event, buffer)
	es := &EventStream{C: ch, s: s, ch: ch}
	s.mu.Lock()
	defer s.mu.Unlock()
	closed := s.streamsClosed
	select {
	case <-s.c.done: // Conn.Close may have passed this session by
		closed = true
	default:
	}
	if closed {
		es.closeLocked()
		return es
	}
	s.streams = append(s.streams, es)
	return es
}

// Dropped returns how many events found the buffer full and were lost.
func (es *EventStream) Dropped() uint64 { return es.dropped.Load() }

// Close stops the stream and closes C; events already buffered stay
// readable. It may be called more than once.
func (es *EventStream) Close() {
	s := es.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.streams {
		if x == es {
			s.streams = append(s.streams[:i], s.streams[i+1:]...)
			break
		}
	}
	es.closeLocked()
}

// closeLocked closes the channel. Caller must hold es.s.mu.
func (es *EventStream) closeLocked() {
	if !es.closed {
		es.closed = true
		close(es.ch)
	}
}

// closeStreams closes every stream of s, now and for streams opened later.
func (s *Session) closeStreams() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streamsClosed = true
	for _, es := range s.streams {
		es.closeLocked()
	}
	s.streams = nil
}

func (c *Conn) dispatchEvent(f *protocol.Frame) {
	s := c.sessionFor(f.Session)
	if s == nil {
		return
	}
	if len(f.Method) > 0 && f.Method[0] == '$' {
		// A name reserved for the protocol.
		if string(f.Method) == MethodSessionLost && len(f.Module) == 0 {
			s.lose(protocol.ErrorFromBody(f.Body))
			return
		}
		c.opts.Logger.Debug().Bytes("event", f.Method).Msg("unknown reserved event dropped")
		return
	}
	e := Event{
		Module:  string(f.Module),
		Type:    string(f.TypeName),
		Name:    string(f.Method),
		Object:  f.Object,
		Payload: append([]byte(nil), f.Body...),
	}
	var fns [4]func(Event)
	s.mu.Lock()
	if e.Object != 0 {
		fns[0] = s.byObject[objectEvent{e.Object, e.Name}]
		fns[1] = s.byObject[objectEvent{e.Object, ""}]
	}
	fns[2] = s.byName[e.Name]
	fns[3] = s.byName[""]
	for _, es := range s.streams {
		select {
		case es.ch <- e:
		default:
			es.dropped.Add(1)
		}
	}
	s.mu.Unlock()
	for _, fn := range fns {
		if fn != nil {
			fn(e)
		}
	}
}
