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
	active int       // calls of the session running now, and a move in progress
	last   time.Time // end of the last call or keep-alive
	// moveDone is set while the session moves to another gateway (handoff)
	// and closed when the move ended, moved or not.
	moveDone chan struct{}

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
	// moved maps the sessions this gateway handed off to the gateway that
	// took them, for the calls that still come here (SPEC.md section 7).
	moved map[protocol.SessionID]*PeerInfo
}

func newSessions(c clock.Clock, ttl time.Duration) *sessions {
	return &sessions{clock: c, ttl: ttl, m: map[protocol.SessionID]*session{}, moved: map[protocol.SessionID]*PeerInfo{}}
}

// found is what acquire found for a stateful call: the session (marked
// busy), or the move it waits for, or the gateway it moved to, or why the
// call is refused.
type found struct {
	s      *session
	moving <-chan struct{}
	moved  *PeerInfo
	err    *protocol.Error
}

func (t *sessions) expiredLocked(s *session, now time.Time) bool {
	return s.active == 0 && now.Sub(s.last) >= t.ttl
}

// acquire returns the session id for a stateful call and marks it busy
// until release. When the gateway does not hold it, create says whether
// the caller declared it new (NEW_SESSION, or the connection's own fresh
// session); otherwise the answer is SESSION_LOST, or NOT_OWNER to a proxy
// that may find the holder elsewhere. A draining gateway refuses to create.
//
// A session that is moving to another gateway is not acquired: the call
// waits on found.moving and asks again. One that has moved yields the
// gateway that holds it now (found.moved), whatever create says.
func (t *sessions) acquire(id protocol.SessionID, create, draining, proxy bool) found {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.m[id]
	if s != nil && t.expiredLocked(s, now) {
		delete(t.m, id)
		s = nil
	}
	if s == nil {
		if to := t.moved[id]; to != nil {
			return found{moved: to}
		}
		switch {
		case !create && proxy:
			return found{err: errNotOwner}
		case !create:
			return found{err: errSessionLost}
		case draining:
			return found{err: errDrainingSession}
		}
		s = &session{id: id}
		t.m[id] = s
	}
	if s.moveDone != nil {
		return found{moving: s.moveDone}
	}
	s.active++
	s.last = now
	return found{s: s}
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

// beginMove marks s moving if it can move now (see movableLocked) and
// reports whether it did. Calls of s wait until endMove.
func (t *sessions) beginMove(s *session) bool {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[s.id] != s || t.expiredLocked(s, now) || !s.movableLocked() {
		return false
	}
	s.moveDone = make(chan struct{})
	s.active++ // not expired, not acquired while it moves
	return true
}

// endMove ends the move of s: to is the gateway that adopted it, or nil
// when the move failed and s stays here.
func (t *sessions) endMove(s *session, to *PeerInfo) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s.active--
	if to != nil {
		delete(t.m, s.id)
		t.moved[s.id] = to
	}
	close(s.moveDone)
	s.moveDone = nil
}

// adopt adds session id with the objects another gateway handed over. It
// fails when the gateway holds a live session of that id already.
func (t *sessions) adopt(id protocol.SessionID, objs map[uint64]*object, next uint64) bool {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.m[id]; s != nil && !t.expiredLocked(s, now) {
		return false
	}
	t.m[id] = &session{id: id, last: now, objects: objs, nextObj: next}
	delete(t.moved, id)
	return true
}

// moving returns the number of sessions moving now.
func (t *sessions) moving() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, s := range t.m {
		if s.moveDone != nil {
			n++
		}
	}
	return n
}

// list returns the live sessions.
func (t *sessions) list() []*session {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*session, 0, len(t.m))
	for _, s := range t.m {
		if !t.expiredLocked(s, now) {
			out = append(out, s)
		}
	}
	return out
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
