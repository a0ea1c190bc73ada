package balancer

import (
	"sync"
	"sync/atomic"

	"github.com/graftlb/graftlb/affinity"
	"github.com/graftlb/graftlb/protocol"
)

// session is the proxy's knowledge of one client session: which gateway
// holds it (the binding) and which client connection gets its callbacks
// and events.
//
// The binding is tentative until a gateway answers one of the session's
// calls (confirmed): a new session refused by its first choice (DRAINING,
// OVERLOADED) or a resumed one that its first choice does not hold
// (NOT_OWNER) moves down its preference list. Once confirmed it never
// moves: if the owner dies the session is lost.
type session struct {
	id  protocol.SessionID
	key uint64 // affinity hash of id

	client   atomic.Pointer[downstream] // the connection that used it last
	lastUsed atomic.Int64               // unix nanoseconds
	creator  *downstream                // the connection that brought it, for its session cap

	// mu guards the binding.
	mu        sync.Mutex
	owner     *backend
	epoch     uint64 // owner's epoch at binding
	fresh     bool   // created by the client: placement may create it
	confirmed bool
	lost      bool
	tried     []*backend // refused this session during placement
}

// sessionShards spreads the session table over independent locks.
const sessionShards = 64

// sessionTable maps session ids to sessions.
type sessionTable struct {
	shards [sessionShards]struct {
		mu sync.Mutex
		m  map[protocol.SessionID]*session
	}
}

func newSessionTable() *sessionTable {
	t := &sessionTable{}
	for i := range t.shards {
		t.shards[i].m = make(map[protocol.SessionID]*session)
	}
	return t
}

func (t *sessionTable) shard(id protocol.SessionID) int { return int(id[0]) % sessionShards }

// get returns the session id, creating it (fresh as given) if unknown.
func (t *sessionTable) get(id protocol.SessionID, fresh bool, now int64) *session {
	return t.getFor(id, fresh, now, nil)
}

// getFor is get that charges a session it creates to connection d's cap.
func (t *sessionTable) getFor(id protocol.SessionID, fresh bool, now int64, d *downstream) *session {
	sh := &t.shards[t.shard(id)]
	sh.mu.Lock()
	s, ok := sh.m[id]
	if !ok {
		s = &session{id: id, key: affinity.HashSession(id), fresh: fresh, creator: d}
		s.lastUsed.Store(now)
		sh.m[id] = s
		if d != nil {
			d.sessionsLive.Add(1)
		}
	}
	sh.mu.Unlock()
	return s
}

// lookup returns the session id, or nil.
func (t *sessionTable) lookup(id protocol.SessionID) *session {
	sh := &t.shards[t.shard(id)]
	sh.mu.Lock()
	s := sh.m[id]
	sh.mu.Unlock()
	return s
}

// expire forgets sessions unused since before cutoff and returns how many
// it forgot.
func (t *sessionTable) expire(cutoff int64) int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for id, s := range sh.m {
			if c := s.client.Load(); c != nil && c.sess == s && !c.closed.Load() {
				continue // the own session of an open connection stays
			}
			if s.lastUsed.Load() < cutoff {
				delete(sh.m, id)
				s.unbind()
				if s.creator != nil {
					s.creator.sessionsLive.Add(-1)
				}
				n++
			}
		}
		sh.mu.Unlock()
	}
	return n
}

// len returns the number of sessions known.
func (t *sessionTable) len() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// unbind drops the session's binding (when it is forgotten).
func (s *session) unbind() {
	s.mu.Lock()
	if s.owner != nil && s.confirmed {
		s.owner.sessions.Add(-1)
	}
	s.owner = nil
	s.mu.Unlock()
}

// frameBuf is a pooled copy of a frame that may have to be sent again (a
// retry, or the next step of a placement walk).
type frameBuf struct{ b []byte }

var framePool = sync.Pool{New: func() any { return &frameBuf{b: make([]byte, 0, 1024)} }}

func keepFrame(raw []byte) *frameBuf {
	fb := framePool.Get().(*frameBuf)
	fb.b = append(fb.b[:0], raw...)
	return fb
}

func (fb *frameBuf) release() {
	if fb == nil {
		return
	}
	if cap(fb.b) > 64<<10 {
		fb.b = make([]byte, 0, 1024)
	}
	framePool.Put(fb)
}
