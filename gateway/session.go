package gateway

import (
	"reflect"
	"sync"
	"time"

	"github.com/graftlb/graftlb/clock"
	"github.com/graftlb/graftlb/protocol"
)

// A session owns the objects its calls create. It is named by its id, not
// by a connection: any connection (a reconnect, a proxy's backend
// connection) that names the id finds the same objects, until the session
// has had no call for the TTL.
type session struct {
	id protocol.SessionID

	// Guarded by sessions.mu.
	active int       // calls of the session running now
	last   time.Time // end of the last call or keep-alive

	mu      sync.Mutex // guards the fields below
	objects map[uint64]*object
	nextObj uint64
}

// object is an instance created by $new.
type object struct {
	typ *typeDesc
	v   reflect.Value
}

func (s *session) addObject(t *typeDesc, v reflect.Value) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.objects == nil {
		s.objects = map[uint64]*object{}
	}
	s.nextObj++
	s.objects[s.nextObj] = &object{typ: t, v: v}
	return s.nextObj
}

func (s *session) object(id uint64) *object {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.objects[id]
}

func (s *session) removeObject(id uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.objects[id]
	delete(s.objects, id)
	return ok
}

// sessions is the gateway's session table. Expiry is checked lazily on
// every lookup, so behaviour on the clock is exact; sweep only frees the
// memory of sessions nobody asks for.
type sessions struct {
	clock clock.Clock
	ttl   time.Duration

	mu sync.Mutex
	m  map[protocol.SessionID]*session
}

func newSessions(c clock.Clock, ttl time.Duration) *sessions {
	return &sessions{clock: c, ttl: ttl, m: map[protocol.SessionID]*session{}}
}

func (t *sessions) expiredLocked(s *session, now time.Time) bool {
	return s.active == 0 && now.Sub(s.last) >= t.ttl
}

// acquire returns the session id for a stateful call and marks it busy
// until release. When the gateway does not hold it, create says whether
// the caller declared it new (NEW_SESSION, or the connection's own fresh
// session); otherwise the answer is SESSION_LOST, or NOT_OWNER to a proxy
// that may find the holder elsewhere. A draining gateway refuses to create.
func (t *sessions) acquire(id protocol.SessionID, create, draining, proxy bool) (*session, *protocol.Error) {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.m[id]
	if s != nil && t.expiredLocked(s, now) {
		delete(t.m, id)
		s = nil
	}
	if s == nil {
		switch {
		case !create && proxy:
			return nil, errNotOwner
		case !create:
			return nil, errSessionLost
		case draining:
			return nil, errDrainingSession
		}
		s = &session{id: id}
		t.m[id] = s
	}
	s.active++
	s.last = now
	return s, nil
}

// release ends a call of s and restarts its idle timer.
func (t *sessions) release(s *session) {
	now := t.clock.Now()
	t.mu.Lock()
	s.active--
	s.last = now
	t.mu.Unlock()
}

// touch keeps a session alive (a PING or a HELLO RESUME naming it).
func (t *sessions) touch(id protocol.SessionID) {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.m[id]; s != nil && !t.expiredLocked(s, now) {
		s.last = now
	}
}

// sweep drops expired sessions and returns how many it dropped.
func (t *sessions) sweep() int {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for id, s := range t.m {
		if t.expiredLocked(s, now) {
			delete(t.m, id)
			n++
		}
	}
	return n
}

// count returns the number of live sessions.
func (t *sessions) count() int {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, s := range t.m {
		if !t.expiredLocked(s, now) {
			n++
		}
	}
	return n
}

// sweepInterval is how often the janitor frees expired sessions: a tenth of
// the TTL, between a second and a minute.
func sweepInterval(ttl time.Duration) time.Duration {
	return min(max(ttl/10, time.Second), time.Minute)
}

// runJanitor sweeps until stop closes. Owned by the gateway.
func (t *sessions) runJanitor(stop <-chan struct{}, onSweep func(int)) {
	tk := t.clock.NewTicker(sweepInterval(t.ttl))
	defer tk.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tk.C():
			if n := t.sweep(); n > 0 && onSweep != nil {
				onSweep(n)
			}
		}
	}
}

// Session errors, preallocated.
var (
	errSessionLost     = &protocol.Error{Code: protocol.CodeSessionLost, Message: "session not held by this gateway (expired or never created)"}
	errNotOwner        = &protocol.Error{Code: protocol.CodeNotOwner, Message: "this gateway does not hold the session"}
	errDrainingSession = &protocol.Error{Code: protocol.CodeDraining, Message: "gateway is draining: no new sessions"}
)
