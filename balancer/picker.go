package balancer

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/graftlb/graftlb/affinity"
	"github.com/graftlb/graftlb/health"
)

// picker is an immutable routing snapshot of the pool: the Maglev table over
// its gateways, which of them admit new sessions, and the candidates for
// stateless calls per module. The control goroutine builds a new one on
// every change of membership or gateway state and publishes it atomically;
// the data path reads it without locks. Nothing in it changes after build.
type picker struct {
	backends []*backend      // sorted by name; index i is table member i
	table    *affinity.Table // nil when the pool is empty
	// admit[i]: backend i may take a new session (connected, not draining,
	// not drained by an operator).
	admit []bool
	// hold[i]: backend i may hold sessions (connected, draining or not).
	hold []bool
	// serves maps module@version to the per-index flags of the backends
	// that serve it; servesAll holds the backends with no module list, for
	// modules no backend announces.
	serves    map[string][]bool
	servesAll []bool
	// stateless maps a module to the backends that may take its stateless
	// calls; statelessAll is for modules not in the map.
	stateless    map[string][]*backend
	statelessAll []*backend
	// randN draws an int in [0, n); rand.IntN unless a test sets it.
	randN func(n int) int
	// panic is set when fewer than the panic threshold of the connected
	// gateways were healthy: admit and stateless then ignore health.
	panic              bool
	healthy, connected int
	// sessionTTL is the shortest session TTL the pool's gateways announce:
	// what WELCOME tells clients (0: none known yet).
	sessionTTL time.Duration
}

// buildPicker builds the snapshot of backends (sorted by name). The table
// is reused from prev when the member set is unchanged. A gateway admits new
// sessions and stateless calls when it is connected, not draining (nor
// drained by an operator), and healthy (active checks up, not ejected) — or, in panic mode (fewer than
// panicThreshold of the connected gateways healthy), when it is connected
// and not draining. A gateway may hold sessions when it is connected and
// its active checks pass.
func buildPicker(backends []*backend, prev *picker, panicThreshold float64) (*picker, error) {
	pk := &picker{backends: backends, randN: rand.IntN,
		serves: make(map[string][]bool), stateless: make(map[string][]*backend)}
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
	pk.panic = health.InPanic(pk.healthy, pk.connected, panicThreshold)
	for i, b := range backends {
		up := b.up.Load() && !b.removed.Load()
		pk.hold[i] = up && b.checkUp.Load()
		pk.admit[i] = up && !b.draining.Load() && !b.adminDrain.Load() && (pk.panic || b.healthy())
		if len(b.member.Modules) == 0 {
			pk.servesAll[i] = true
			if pk.admit[i] {
				pk.statelessAll = append(pk.statelessAll, b)
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
		pk.stateless[m] = cands
	}
	return pk, nil
}

func sameMembers(a, b []*backend) bool {
	return slices.EqualFunc(a, b, func(x, y *backend) bool {
		return x.name == y.name && x.member.Weight == y.member.Weight
	})
}

// servesFlags returns the per-index flags of the backends serving module.
func (pk *picker) servesFlags(module []byte) []bool {
	if f, ok := pk.serves[string(module)]; ok {
		return f
	}
	return pk.servesAll
}

// pickStateless chooses a backend for a stateless call of module by the
// power of two choices (Mitzenmacher) over the expected wait: latency
// estimate × (calls in flight + 1) / weight, so a slow gateway is avoided
// as soon as its calls come back slowly, not only once they pile up. Two
// costs less than latencyFloor apart are a tie, broken at random by
// weight, so that an idle pool spreads calls made one at a time.
// It avoids skip when another backend exists; nil when none can take it.
func (pk *picker) pickStateless(module []byte, skip *backend, now int64) *backend {
	cands, ok := pk.stateless[string(module)]
	if !ok {
		cands = pk.statelessAll
	}
	switch len(cands) {
	case 0:
		return nil
	case 1:
		return cands[0]
	case 2:
		if cands[0] == skip {
			return cands[1]
		}
		if cands[1] == skip {
			return cands[0]
		}
	}
	i := pk.randN(len(cands))
	j := pk.randN(len(cands) - 1)
	if j >= i {
		j++
	}
	a, b := cands[i], cands[j]
	if a == skip {
		return b
	}
	if b == skip {
		return a
	}
	ca, cb := a.cost(now), b.cost(now)
	if math.Abs(ca-cb) < float64(latencyFloor) {
		// A near tie: the difference is noise (an idle pool, a GC pause
		// in one sample), and taking the lower every time would send a
		// sequential caller's every call to one gateway. Choose at random,
		// in proportion to weight.
		wa, wb := max(a.weight.Load(), 1), max(b.weight.Load(), 1)
		if int64(pk.randN(int(wa+wb))) < wa {
			return a
		}
		return b
	}
	if ca < cb {
		return a
	}
	return b
}

// nextOwner walks the session key's preference list and returns the first
// backend that serves module, is eligible (admit for a new session, hold
// for a resumed one) and is not in tried. scratch is reused for the list.
func (pk *picker) nextOwner(key uint64, module []byte, fresh bool, tried []*backend, limit int, scratch []int) (*backend, []int) {
	if pk.table == nil {
		return nil, scratch
	}
	scratch = pk.table.Preference(key, scratch)
	serves := pk.servesFlags(module)
	eligible := pk.hold
	if fresh {
		eligible = pk.admit
	}
	probes := 0
	for _, i := range scratch {
		if !serves[i] || !eligible[i] {
			continue
		}
		b := pk.backends[i]
		probes++
		if probes > limit {
			return nil, scratch
		}
		if slices.Contains(tried, b) {
			continue
		}
		return b, scratch
	}
	return nil, scratch
}

// unreachable reports whether a backend serving module is in the pool but
// not connected, and was not asked yet: it might hold a resumed session.
func (pk *picker) unreachable(module []byte, tried []*backend) bool {
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
func (pk *picker) knows(module []byte) bool {
	if _, ok := pk.serves[string(module)]; ok {
		return true
	}
	return slices.Contains(pk.servesAll, true)
}

// named returns the backend called name, or nil.
func (pk *picker) named(name []byte) *backend {
	i, ok := slices.BinarySearchFunc(pk.backends, name, func(b *backend, n []byte) int {
		return strings.Compare(b.name, string(n))
	})
	if !ok {
		return nil
	}
	return pk.backends[i]
}
