package balancer

import (
	"sync"
	"sync/atomic"
	"weak"

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
//
// A session refers to client connections only weakly (clientRef), and to
// the quotas it is charged to: a session that outlives its connection
// keeps nothing of that connection reachable.
type session struct {
	id  protocol.SessionID
	key uint64 // affinity hash of id
	// cid is the id its client names it by: id itself, or with credentials
	// the client's id that id is derived from (auth.go). Immutable.
	cid protocol.SessionID

	client   atomic.Pointer[clientRef] // the connection that used it last
	lastUsed atomic.Int64              // unix nanoseconds
	gone     atomic.Bool               // forgotten by the table
	// Immutable after the session enters the table: the quotas it counts
	// against (the connection that brought it, and its source address).
	connQuota *atomic.Int32
	srcQuota  *sourceQuota

	// held is owner while the binding is confirmed and the session not
	// lost, else nil: what the reply path and keepalives read without mu.
	// It is written under mu, by syncHeldLocked, after every change of
	// those fields.
	held atomic.Pointer[backend]

	// mu guards the binding.
	mu        sync.Mutex
	owner     *backend
	epoch     uint64 // owner's epoch at binding
	fresh     bool   // created by the client: placement may create it
	confirmed bool
	lost      bool
	tried     []*backend      // refused this session during placement
	why       []protocol.Code // why each of tried was skipped (refused)
}

// skip records that b was skipped while placing s, and why. Caller must
// hold s.mu.
func (s *session) skip(b *backend, why protocol.Code) {
	s.tried = append(s.tried, b)
	s.why = append(s.why, why)
}

// syncHeldLocked publishes the binding's state to held. Caller must hold
// s.mu, and call it after changing owner, confirmed or lost.
func (s *session) syncHeldLocked() {
	var b *backend
	if s.confirmed && !s.lost {
		b = s.owner
	}
	if s.held.Load() != b {
		s.held.Store(b)
	}
}

// heldObjectsLocked reports whether the session may hold objects on a gateway:
// a gateway answered one of its stateful calls. Caller must hold s.mu.
func (s *session) heldObjectsLocked() bool { return s.confirmed && !s.lost }

// clientRef names a client connection without keeping it alive. Each
// downstream makes one when it starts; sessions point at it.
type clientRef struct{ wp weak.Pointer[downstream] }

func newClientRef(d *downstream) *clientRef { return &clientRef{wp: weak.Make(d)} }

// get returns the connection if it is still open, else nil.
func (r *clientRef) get() *downstream {
	if r == nil {
		return nil
	}
	d := r.wp.Value()
	if d == nil || d.closed.Load() {
		return nil
	}
	return d
}

// sourceQuota counts the sessions in the table brought by one source
// address, and its open connections (a quota with either is kept).
type sourceQuota struct {
	key   string
	n     atomic.Int64 // sessions
	conns atomic.Int64 // open client connections
	tat   atomic.Int64 // the rate limit's theoretical arrival time (ratelimit.go)
}

// sessionShards spreads the session table over independent locks.
const sessionShards = 64

// sessionTable maps session ids to sessions, within three bounds: the
// table as a whole (max), each source address (maxPerSource) and each
// client connection (maxPerConn). A connection's own session (from its
// HELLO) is counted but never refused: connections are bounded by
// MaxConns.
type sessionTable struct {
	shards [sessionShards]struct {
		mu sync.Mutex
		m  map[protocol.SessionID]*session
	}
	count atomic.Int64
	// The caps (Config.MaxSessions*), which a reload changes.
	max, maxPerSource, maxPerConn atomic.Int64

	// srcMu guards bySource.
	srcMu    sync.Mutex
	bySource map[string]*sourceQuota
}

// tableRefusal says why the table did not take a session.
type tableRefusal uint8

const (
	tableOK tableRefusal = iota
	tableFull
	sourceFull
	connFull
)

func (r tableRefusal) String() string {
	switch r {
	case tableFull:
		return "the proxy's session table is full"
	case sourceFull:
		return "too many sessions from this source address"
	case connFull:
		return "too many sessions on this connection"
	}
	return "ok"
}

func newSessionTable(max, maxPerSource, maxPerConn int) *sessionTable {
	t := &sessionTable{bySource: make(map[string]*sourceQuota)}
	t.setLimits(max, maxPerSource, maxPerConn)
	for i := range t.shards {
		t.shards[i].m = make(map[protocol.SessionID]*session)
	}
	return t
}

// setLimits changes the caps; sessions already in the table stay, and a
// cap lowered below its count refuses new sessions until enough leave.
func (t *sessionTable) setLimits(max, maxPerSource, maxPerConn int) {
	t.max.Store(int64(max))
	t.maxPerSource.Store(int64(maxPerSource))
	t.maxPerConn.Store(int64(maxPerConn))
}

func (t *sessionTable) shard(id protocol.SessionID) int { return int(id[0]) % sessionShards }

// openSource returns the quota of source address key for a new
// connection, creating it; closeSource gives the connection's share back.
func (t *sessionTable) openSource(key string) *sourceQuota {
	t.srcMu.Lock()
	defer t.srcMu.Unlock()
	q := t.bySource[key]
	if q == nil {
		q = &sourceQuota{key: key}
		t.bySource[key] = q
	}
	q.conns.Add(1)
	return q
}

func (t *sessionTable) closeSource(q *sourceQuota) { q.conns.Add(-1) }

// own returns a connection's own session, creating it (fresh as given) if
// unknown; it is never refused.
func (t *sessionTable) own(id, cid protocol.SessionID, fresh bool, now int64, d *downstream) *session {
	s, _ := t.getFor(id, cid, fresh, now, d, false)
	return s
}

// getFor returns session id, creating it (fresh as given, named cid by its
// client) if unknown and charging it to connection d's quotas; limit makes
// the quotas refuse it.
func (t *sessionTable) getFor(id, cid protocol.SessionID, fresh bool, now int64, d *downstream, limit bool) (*session, tableRefusal) {
	sh := &t.shards[t.shard(id)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if s, ok := sh.m[id]; ok {
		return s, tableOK
	}
	if limit {
		switch {
		case t.count.Load() >= t.max.Load():
			return nil, tableFull
		case d.src.n.Load() >= t.maxPerSource.Load():
			return nil, sourceFull
		case int64(d.sessionsLive.Load()) > t.maxPerConn.Load(): // its own is counted too
			return nil, connFull
		}
	}
	s := &session{id: id, cid: cid, key: affinity.HashSession(id), fresh: fresh, connQuota: d.sessionsLive, srcQuota: d.src}
	s.lastUsed.Store(now)
	sh.m[id] = s
	t.count.Add(1)
	d.src.n.Add(1)
	d.sessionsLive.Add(1)
	return s, tableOK
}

// lookup returns the session id, or nil.
func (t *sessionTable) lookup(id protocol.SessionID) *session {
	sh := &t.shards[t.shard(id)]
	sh.mu.Lock()
	s := sh.m[id]
	sh.mu.Unlock()
	return s
}

// removeLocked forgets s. Caller must hold its shard's lock.
func (t *sessionTable) removeLocked(m map[protocol.SessionID]*session, s *session) {
	if m[s.id] != s {
		return
	}
	delete(m, s.id)
	s.gone.Store(true)
	t.count.Add(-1)
	s.srcQuota.n.Add(-1)
	s.connQuota.Add(-1)
	s.unbind()
}

// forgetIfEmpty forgets s unless it may hold objects on a gateway or a
// placement of it is under way; it reports whether it forgot s. A session
// that never held an object has nothing to come back to: keeping it would
// only cost memory (a closed connection's sessions, a resumed session that
// no gateway holds).
func (t *sessionTable) forgetIfEmpty(s *session) bool {
	sh := &t.shards[t.shard(s.id)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s.mu.Lock()
	keep := s.heldObjectsLocked() || (s.owner != nil && !s.lost)
	s.mu.Unlock()
	if keep {
		return false
	}
	t.removeLocked(sh.m, s)
	return true
}

// expire forgets sessions unused since before cutoff and returns how many
// it forgot.
func (t *sessionTable) expire(cutoff int64) int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for _, s := range sh.m {
			if c := s.client.Load().get(); c != nil && c.sess == s {
				continue // the own session of an open connection stays
			}
			if s.lastUsed.Load() < cutoff {
				t.removeLocked(sh.m, s)
				n++
			}
		}
		sh.mu.Unlock()
	}
	t.srcMu.Lock()
	for k, q := range t.bySource {
		if q.n.Load() == 0 && q.conns.Load() == 0 {
			delete(t.bySource, k)
		}
	}
	t.srcMu.Unlock()
	return n
}

// each calls fn for every session, one shard locked at a time; fn must
// not take a shard lock.
func (t *sessionTable) each(fn func(*session)) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for _, s := range sh.m {
			fn(s)
		}
		sh.mu.Unlock()
	}
}

// bound reports whether s is confirmed on b and not lost.
func (s *session) bound(b *backend) bool { return s.held.Load() == b }

// ownedBy reports whether b is the session's gateway (lost with it or not):
// false once the session moved elsewhere.
func (s *session) ownedBy(b *backend) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.owner == b
}

// len returns the number of sessions known.
func (t *sessionTable) len() int { return int(t.count.Load()) }

// unbind drops the session's binding (when it is forgotten).
func (s *session) unbind() {
	s.mu.Lock()
	if s.owner != nil && s.confirmed && !s.lost {
		s.owner.sessions.Add(-1)
	}
	s.owner = nil
	s.tried, s.why = nil, nil
	s.syncHeldLocked()
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
