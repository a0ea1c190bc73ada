package balancer

import (
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/graftlb/graftlb/affinity"
	"github.com/graftlb/graftlb/health"
)

// snapshot is an immutable routing snapshot of the pool: the Maglev table
// over its gateways, which of them admit new sessions, may hold sessions or
// fail their checks, the candidates for stateless calls per module, and the
// two pickers that decide on it (picker.go). Health is folded in when it is
// built: nothing on the data path reads a gateway's health flags. The
// control goroutine builds a new one on every change of membership, gateway
// state or health and publishes it atomically (Proxy.picker); the data path
// reads it without locks. Nothing in it changes after build.
type snapshot struct {
	backends []*backend      // sorted by name; index i is table member i
	table    *affinity.Table // nil when the pool is empty
	// admit[i]: backend i may take a new session (connected, not draining,
	// not drained by an operator).
	admit []bool
	// hold[i]: backend i may hold sessions (connected and passing its
	// active checks, draining or not).
	hold []bool
	// failing[i]: backend i fails its active checks and is not draining: a
	// call of a session it holds fails at once rather than hang there
	// (route.go also reads draining live, which GOAWAY sets before the
	// next snapshot).
	failing []bool
	// serves maps module@version to the per-index flags of the backends
	// that serve it; servesAll holds the backends with no module list, for
	// modules no backend announces.
	serves    map[string][]bool
	servesAll []bool
	// cands maps a module to the backends that may take its stateless
	// calls; candsAll is for modules not in the map.
	cands    map[string][]*backend
	candsAll []*backend
	// randN draws an int in [0, n); rand.IntN unless a test sets it.
	randN func(n int) int
	// panic is set when fewer than the panic threshold of the connected
	// gateways were healthy: admit and stateless then ignore health.
	panic              bool
	healthy, connected int
	// sessionTTL is the shortest session TTL the pool's gateways announce:
	// what WELCOME tells clients (0: none known yet).
	sessionTTL time.Duration

	// stateless decides the gateway of a stateless call, sessions that of
	// a session the proxy has not bound: the policies routing names, or
	// errPickers while no gateway is connected.
	stateless, sessions picker
}

// routing is what snapshots are built with, from Config; fixed after New.
type routing struct {
	panicThreshold float64 // Health.PanicThreshold
	maxOwnerProbes int     // MaxOwnerProbes
	loadBound      float64 // SessionLoadBound; 0: plain consistent hashing
}

func routingOf(c Config) routing {
	return routing{panicThreshold: c.Health.PanicThreshold, maxOwnerProbes: c.MaxOwnerProbes, loadBound: c.SessionLoadBound}
}

// buildSnapshot builds the snapshot of backends (sorted by name). The table
// is reused from prev when the member set is unchanged. A gateway admits new
// sessions and stateless calls when it is connected, not draining (nor
// drained by an operator), and healthy (active checks up, not ejected) — or, in panic mode (fewer than
// panicThreshold of the connected gateways healthy), when it is connected
// and not draining. A gateway may hold sessions when it is connected and
// its active checks pass.
func buildSnapshot(backends []*backend, prev *snapshot, r routing) (*snapshot, error) {
	pk := &snapshot{backends: backends, randN: rand.IntN,
		serves: make(map[string][]bool), cands: make(map[string][]*backend)}
	n := len(backends)
	if n > 0 {
		if prev != nil && sameMembers(prev.backends, backends) {
			pk.table = prev.table
		} else {
			ms := make([]affinity.Member, n)
			for i, b := range backends {
				ms[i] = affinity.Member{Name: b.name, Weight: b.member.Weight}
			}
			t, err := affinity.NewTable(ms)
			if err != nil {
				return nil, err
			}
			pk.table = t
		}
	}
	pk.admit = make([]bool, n)
	pk.hold = make([]bool, n)
	pk.failing = make([]bool, n)
	pk.servesAll = make([]bool, n)
	modules := map[string]bool{}
	for _, b := range backends {
		for _, m := range b.member.Modules {
			modules[m] = true
		}
	}
	for _, b := range backends {
		if ttl := time.Duration(b.sessionTTL.Load()); ttl > 0 && (pk.sessionTTL == 0 || ttl < pk.sessionTTL) {
			pk.sessionTTL = ttl
		}
		if b.up.Load() && !b.removed.Load() {
			pk.connected++
			if b.healthy() {
				pk.healthy++
			}
		}
	}
	pk.panic = health.InPanic(pk.healthy, pk.connected, r.panicThreshold)
	for i, b := range backends {
		up := b.up.Load() && !b.removed.Load()
		pk.hold[i] = up && b.checkUp.Load()
		pk.failing[i] = !b.checkUp.Load() && !b.draining.Load()
		pk.admit[i] = up && !b.draining.Load() && !b.adminDrain.Load() && !b.retiring.Load() && (pk.panic || b.healthy())
		if len(b.member.Modules) == 0 {
			pk.servesAll[i] = true
			if pk.admit[i] {
				pk.candsAll = append(pk.candsAll, b)
			}
		}
	}
	for m := range modules {
		flags := make([]bool, n)
		var cands []*backend
		for i, b := range backends {
			if b.member.Serves(m) {
				flags[i] = true
				if pk.admit[i] {
					cands = append(cands, b)
				}
			}
		}
		pk.serves[m] = flags
		pk.cands[m] = cands
	}
	pk.stateless, pk.sessions = newPickers(pk, r)
	return pk, nil
}

func sameMembers(a, b []*backend) bool {
	return slices.EqualFunc(a, b, func(x, y *backend) bool {
		return x.name == y.name && x.member.Weight == y.member.Weight
	})
}

// servesFlags returns the per-index flags of the backends serving module.
func (pk *snapshot) servesFlags(module []byte) []bool {
	if f, ok := pk.serves[string(module)]; ok {
		return f
	}
	return pk.servesAll
}

// unreachable reports whether a backend serving module is in the pool but
// not connected, and was not asked yet: it might hold a resumed session.
func (pk *snapshot) unreachable(module []byte, tried []*backend) bool {
	serves := pk.servesFlags(module)
	for i, b := range pk.backends {
		if serves[i] && !pk.hold[i] && !slices.Contains(tried, b) {
			return true
		}
	}
	return false
}

// knows reports whether some backend may serve module: one announces it,
// or one announces no module list (and so serves everything).
func (pk *snapshot) knows(module []byte) bool {
	if _, ok := pk.serves[string(module)]; ok {
		return true
	}
	return slices.Contains(pk.servesAll, true)
}

// named returns the backend called name, or nil.
func (pk *snapshot) named(name []byte) *backend {
	i, ok := slices.BinarySearchFunc(pk.backends, name, func(b *backend, n []byte) int {
		return strings.Compare(b.name, string(n))
	})
	if !ok {
		return nil
	}
	return pk.backends[i]
}

// fails reports whether b fails its active checks (and is not draining) in
// this snapshot.
func (pk *snapshot) fails(b *backend) bool {
	i, ok := slices.BinarySearchFunc(pk.backends, b.name, func(x *backend, n string) int {
		return strings.Compare(x.name, n)
	})
	return ok && pk.backends[i] == b && pk.failing[i]
}
