package balancer

import (
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/graftlb/graftlb/credential"
	"github.com/graftlb/graftlb/protocol"
)

// Credentials (Config.Auth). A proxy that checks credentials answers a
// HELLO without a good one ERROR UNAUTHENTICATED and closes (SPEC.md
// section 4), and binds every session to the identity that named it: the
// session id a client names (its id) is never sent to a gateway as it is.
// The proxy forwards the gateway-side id
//
//	D = SHA-256("graftlb/session/v1\x00" ‖ K ‖ X)[:16],  K = SHA-256("graftlb/identity/v1\x00" ‖ identity)
//
// of client session id X, and writes X back into every frame that goes
// from a gateway to the client (replies, CALLBACK, EVENT, topic events,
// the session-lost notice). Inside the proxy (its session table, the
// preference lists, MOVED from gateways) a session is named by D. Every
// proxy derives the same D from the same identity and X, so a session
// resumes through any proxy with no shared state; another identity naming
// X derives another D, which no gateway holds: its calls get SESSION_LOST
// by the usual NOT_OWNER walk, never the objects. Without credentials none
// of this runs: ids go through unchanged, at no cost.

// sessionBinding is what a client connection of an authenticated identity
// translates session ids with. Owned by the connection's reader, except
// the immutable key.
type sessionBinding struct {
	key          [sha256.Size]byte // K of the connection's identity
	ownX         protocol.SessionID
	lastX, lastD protocol.SessionID // the last derivation other than the own session's
}

const (
	identityDomain = "graftlb/identity/v1\x00"
	sessionDomain  = "graftlb/session/v1\x00"
)

func newSessionBinding(id credential.Identity) *sessionBinding {
	b := &sessionBinding{}
	h := sha256.New()
	h.Write([]byte(identityDomain))
	h.Write([]byte(id))
	h.Sum(b.key[:0])
	return b
}

// derive returns the gateway-side id of client session id x. It allocates
// nothing.
func (b *sessionBinding) derive(x protocol.SessionID) protocol.SessionID {
	var in [len(sessionDomain) + sha256.Size + len(x)]byte
	n := copy(in[:], sessionDomain)
	n += copy(in[n:], b.key[:])
	copy(in[n:], x[:])
	sum := sha256.Sum256(in[:])
	var d protocol.SessionID
	copy(d[:], sum[:])
	return d
}

// toGateway returns the gateway-side id of client session id x (not
// zero): the connection's own without hashing, else the last one derived
// when it is x again, else a new derivation. Only the connection's reader
// calls it.
func (b *sessionBinding) toGateway(x protocol.SessionID, own *session) protocol.SessionID {
	switch x {
	case b.ownX:
		return own.id
	case b.lastX:
		return b.lastD
	}
	d := b.derive(x)
	b.lastX, b.lastD = x, d
	return d
}

// authenticate checks the HELLO's credential when the proxy checks
// credentials: it returns the identity, or answers UNAUTHENTICATED (the
// connection is then closed by the caller) and returns false. The refusal
// is counted, and logged with its reason at most once per
// listener.RefusalLogInterval.
func (d *downstream) authenticate(h *protocol.Hello) (credential.Identity, bool) {
	p := d.p
	id, err := p.verifier.Verify(h.Credential)
	if err == nil {
		return id, true
	}
	p.stats.unauthenticated.Add(1)
	reason := "bad credential"
	if ce, ok := err.(*credential.Error); ok {
		reason = ce.Reason
	}
	if ok, suppressed := p.authLog.Allow(p.now()); ok {
		p.cfg.Logger.Warn().Str("client", d.pc.RemoteAddr().String()).Err(err).
			Int64("suppressed", suppressed).Msg("HELLO refused: UNAUTHENTICATED")
	}
	d.sendError(0, protocol.CodeUnauthenticated, reason)
	return "", false
}

// identityRates holds the rate limit words of the identities that have
// connections open, so that Config.CallRate limits an identity over all
// its connections, from any address, when credentials are on.
type identityRates struct {
	mu sync.Mutex
	m  map[credential.Identity]*identityRate
}

type identityRate struct {
	tat   atomic.Int64 // the rate limit's theoretical arrival time (ratelimit.go)
	conns int          // open connections; under identityRates.mu
}

func (t *identityRates) open(id credential.Identity) *identityRate {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[credential.Identity]*identityRate)
	}
	r := t.m[id]
	if r == nil {
		r = &identityRate{}
		t.m[id] = r
	}
	r.conns++
	return r
}

// close gives a connection's share back; the word of an identity with no
// connection left is forgotten (its budget refills meanwhile anyway: a
// word of the past admits a full burst).
func (t *identityRates) close(id credential.Identity, r *identityRate) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.conns--; r.conns <= 0 && t.m[id] == r {
		delete(t.m, id)
	}
}

// moduleLimit caps the calls in flight per module, proxy-wide
// (Config.MaxModuleCalls). Each module seen gets a counter on its first
// call (copy on write: the lookup of a known module takes no lock and
// allocates nothing); past maxCappedModules distinct modules, the others
// share one counter.
type moduleLimit struct {
	max   atomic.Int64 // 0: off; a reload may change it (setMax)
	mods  atomic.Pointer[map[string]*atomic.Int64]
	mu    sync.Mutex // serialises inserts
	other atomic.Int64
}

// maxCappedModules bounds the modules that get a counter of their own.
const maxCappedModules = 4096

func newModuleLimit(max int) *moduleLimit {
	l := &moduleLimit{}
	l.max.Store(int64(max))
	l.mods.Store(&map[string]*atomic.Int64{})
	return l
}

// counter returns module's counter, creating it on first sight.
func (l *moduleLimit) counter(module []byte) *atomic.Int64 {
	if c := (*l.mods.Load())[string(module)]; c != nil {
		return c
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := *l.mods.Load()
	if c := cur[string(module)]; c != nil {
		return c
	}
	if len(cur) >= maxCappedModules {
		return &l.other
	}
	next := make(map[string]*atomic.Int64, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	c := new(atomic.Int64)
	next[string(module)] = c
	l.mods.Store(&next)
	return c
}

// setMax changes the cap (a reload). Calls in flight keep the slots they
// took and give them back as they settle; calls that started while the
// cap was off took none and give none back.
func (l *moduleLimit) setMax(max int) { l.max.Store(int64(max)) }

// on reports whether the cap is on.
func (l *moduleLimit) on() bool { return l.max.Load() > 0 }

// acquire takes a slot of module for a call and returns its counter, or
// nil when the module has max calls in flight already.
func (l *moduleLimit) acquire(module []byte) *atomic.Int64 {
	c := l.counter(module)
	if c.Add(1) > l.max.Load() {
		c.Add(-1)
		return nil
	}
	return c
}

// inflight returns the calls in flight of module (for tests and the admin
// API).
func (l *moduleLimit) inflight(module string) int64 {
	if c := (*l.mods.Load())[module]; c != nil {
		return c.Load()
	}
	return 0
}

func (l *moduleLimit) refusal(module []byte) string {
	return fmt.Sprintf("module %s has %d calls in flight at this proxy, its max_module_calls", module, l.max.Load())
}
