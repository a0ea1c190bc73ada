package balancer

import (
	"errors"
	"math"
	"slices"
)

// This file decides where a call goes, the first of the three steps a
// call takes through this package (call.go has the whole path): a picker
// of the current snapshot returns the gateway, or an error that says why
// none takes the call. Forwarding (upstream.go) and settling (call.go)
// come after.

// picker decides which gateway takes a call. Each snapshot has two: one for
// stateless calls and one for placing sessions, the policies routing names
// (p2c; preferenceWalk or boundedLoad), or an errPicker while no gateway is
// connected. Pick may be called from any goroutine at any time: it reads
// only its immutable snapshot and the gateways' load counters (atomics),
// and must not block, lock or allocate. Pickers are built by the control
// goroutine only, with their snapshot.
type picker interface {
	Pick(pickInfo) (pick, error)
}

// pickInfo is what a pick is decided on. It is a value, apart from the
// call (which lives in an upstream's map while in flight, where a view of
// the client's read buffer must not).
type pickInfo struct {
	module []byte // module@version the call targets
	// Stateless calls.
	skip *backend // a gateway to avoid when another can take the call
	now  int64    // unix nanoseconds, for the latency estimates
	// Sessions.
	key     uint64       // affinity hash of the session id
	fresh   bool         // the session may be created here, not only found
	tried   []*backend   // gateways that refused it already
	scratch *pickScratch // buffers reused across picks of one connection
}

// pickScratch holds the buffers of session picks, owned by one client
// connection's reader.
type pickScratch struct {
	pref  []int   // a preference list
	loads []int64 // sessions per gateway, for bounded loads
}

// pick is a picker's decision: the gateway that takes the call, and its
// index in the snapshot (-1 when the picker did not need it).
type pick struct {
	b *backend
	i int
}

// Reasons a picker finds no gateway; route.go turns them into the error
// the client gets.
var (
	// errEmptyPool: no gateway of the pool is connected. Clients get
	// UNAVAILABLE (try again), not NOT_FOUND (a mistake in the call), since
	// a proxy that just started or lost its pool does not know what it
	// serves.
	errEmptyPool = errors.New("no gateway of the pool is up")
	// errUnknownModule: no gateway of the pool serves the module.
	errUnknownModule = errors.New("no gateway in the pool serves the module")
	// errNoGateway: gateways serve the module, but none may take the call
	// now (draining, unhealthy, all tried or skipped).
	errNoGateway = errors.New("no gateway can take the call")
)

// newPickers returns the pickers of snapshot pk, as r chooses.
func newPickers(pk *snapshot, r routing) (stateless, sessions picker) {
	if pk.connected == 0 {
		return errPicker{errEmptyPool}, errPicker{errEmptyPool}
	}
	walk := preferenceWalk{pk: pk, limit: r.maxOwnerProbes}
	if r.loadBound > 0 {
		return p2c{pk}, boundedLoad{walk: walk, epsilon: r.loadBound}
	}
	return p2c{pk}, walk
}

// errPicker refuses every call with err: the pool's state when nothing can
// take a call is published like any other (grpc's ErrPicker).
type errPicker struct{ err error }

func (e errPicker) Pick(pickInfo) (pick, error) { return pick{i: -1}, e.err }

// noneFor is the error of a pick that found no gateway for module.
func (pk *snapshot) noneFor(module []byte) (pick, error) {
	if !pk.knows(module) {
		return pick{i: -1}, errUnknownModule
	}
	return pick{i: -1}, errNoGateway
}

// p2c chooses a gateway for a stateless call by the power of two choices
// (Mitzenmacher) over the expected wait: latency estimate × (calls in
// flight + 1) / weight, so a slow gateway is avoided as soon as its calls
// come back slowly, not only once they pile up. Two costs less than
// latencyFloor apart are a tie, broken at random by weight, so that an idle
// pool spreads calls made one at a time. It avoids skip when another
// gateway can take the call.
type p2c struct{ pk *snapshot }

func (p p2c) Pick(in pickInfo) (pick, error) {
	pk := p.pk
	cands, ok := pk.cands[string(in.module)]
	if !ok {
		cands = pk.candsAll
	}
	skip := in.skip
	switch len(cands) {
	case 0:
		return pk.noneFor(in.module)
	case 1:
		return pick{b: cands[0], i: -1}, nil
	case 2:
		if cands[0] == skip {
			return pick{b: cands[1], i: -1}, nil
		}
		if cands[1] == skip {
			return pick{b: cands[0], i: -1}, nil
		}
	}
	i := pk.randN(len(cands))
	j := pk.randN(len(cands) - 1)
	if j >= i {
		j++
	}
	a, b := cands[i], cands[j]
	if a == skip {
		return pick{b: b, i: -1}, nil
	}
	if b == skip {
		return pick{b: a, i: -1}, nil
	}
	ca, cb := a.cost(in.now), b.cost(in.now)
	if math.Abs(ca-cb) < float64(latencyFloor) {
		// A near tie: the difference is noise (an idle pool, a GC pause
		// in one sample), and taking the lower every time would send a
		// sequential caller's every call to one gateway. Choose at random,
		// in proportion to weight.
		wa, wb := max(a.weight.Load(), 1), max(b.weight.Load(), 1)
		if int64(pk.randN(int(wa+wb))) < wa {
			return pick{b: a, i: -1}, nil
		}
		return pick{b: b, i: -1}, nil
	}
	if ca < cb {
		return pick{b: a, i: -1}, nil
	}
	return pick{b: b, i: -1}, nil
}

// preferenceWalk places a session by consistent hashing: it walks the
// session key's Maglev preference list and returns the first gateway that
// serves the module, is eligible (admits new sessions, for a fresh one;
// may hold sessions, for one being looked up) and was not tried. It gives
// up after limit eligible gateways (MaxOwnerProbes), so that proxies agree
// on owners without sharing state (DESIGN.md section 4).
type preferenceWalk struct {
	pk    *snapshot
	limit int
}

func (w preferenceWalk) Pick(in pickInfo) (pick, error) {
	pk := w.pk
	pref := pk.table.Preference(in.key, in.scratch.pref)
	in.scratch.pref = pref
	serves := pk.servesFlags(in.module)
	eligible := pk.hold
	if in.fresh {
		eligible = pk.admit
	}
	probes := 0
	for _, i := range pref {
		if !serves[i] || !eligible[i] {
			continue
		}
		b := pk.backends[i]
		if probes++; probes > w.limit {
			break
		}
		if !slices.Contains(in.tried, b) {
			return pick{b: b, i: i}, nil
		}
	}
	return pk.noneFor(in.module)
}

// boundedLoad places a new session by consistent hashing with bounded
// loads (affinity.BoundedOwner, Mirrokni et al.): the first gateway of its
// preference list that may take it and holds fewer than (1+epsilon) × the
// mean of the sessions this proxy bound to such gateways (confirmed ones;
// a burst of new sessions counts once their first calls are answered). It
// looks a session up (not fresh) as preferenceWalk does: the NOT_OWNER walk
// finds a holder that another proxy placed past a full gateway.
//
// The trade-off, chosen by Config.SessionLoadBound: each proxy counts its
// own loads, so two proxies may place one new session on different
// gateways (the gateway's NOT_OWNER and the walk still find it when it is
// resumed, at the cost of longer walks), and a membership change moves more
// sessions.
type boundedLoad struct {
	walk    preferenceWalk
	epsilon float64
}

func (bl boundedLoad) Pick(in pickInfo) (pick, error) {
	if !in.fresh {
		return bl.walk.Pick(in)
	}
	pk := bl.walk.pk
	loads := in.scratch.loads[:0]
	for _, b := range pk.backends {
		loads = append(loads, b.sessions.Load())
	}
	in.scratch.loads = loads
	serves := pk.servesFlags(in.module)
	i, ok := pk.table.BoundedOwner(in.key, loads, bl.epsilon, func(i int) bool {
		return serves[i] && pk.admit[i] && !slices.Contains(in.tried, pk.backends[i])
	})
	if !ok {
		return pk.noneFor(in.module)
	}
	return pick{b: pk.backends[i], i: i}, nil
}
