package affinity

import (
	"math"
	"slices"
)

// FallbackSeeds is how many rehash rounds a preference list takes from the
// Maglev table before it orders the remaining members by rendezvous hashing.
//
// Fallbacks drawn from the table follow the members' weights, so the sessions
// of a refused owner spread over the others in proportion to their weights.
// Each round costs a hash and a table read and repeats an already listed
// member more and more often, so the number is bounded: the table part of a
// list holds at most 9 members (about 6 of 10, and all 3 of 3 for 92% of
// keys), and the rendezvous tail completes it.
const FallbackSeeds = 8

// rankIndexBits is how many low bits of a rendezvous rank hold the member
// index; MaxMembers fits.
const rankIndexBits = 16

// Preference writes the complete preference list of key into dst[:0] and
// returns it: every member index exactly once, most preferred first. It
// allocates only when cap(dst) < t.Len(). The list is a pure function of the
// members, their weights and the key, identical on every proxy. With H the
// XXH64 hash (seed 0) of two little-endian 64-bit words:
//
//   - position 0 is the Maglev owner, Lookup(key);
//   - then the Maglev owners of H(key, s) for seeds s = 1…FallbackSeeds,
//     skipping members already listed;
//   - then all remaining members in ascending order of the top 47 bits of
//     their rendezvous score H(XXH64(name), key), ties broken by index.
//
// Removing a member from consideration (Owner with ok false for it) therefore
// moves only the keys it owned, each to the next entry of its own list.
func (t *Table) Preference(key uint64, dst []int) []int {
	dst = dst[:0]
	n := len(t.names)
	if n == 0 {
		return dst
	}
	dst = append(dst, t.Lookup(key))
	for s := uint64(1); s <= FallbackSeeds && len(dst) < n; s++ {
		if m := int(t.entries[t.slot(rehash(key, s))]); !slices.Contains(dst, m) {
			dst = append(dst, m)
		}
	}
	listed := len(dst)
	if listed == n {
		return dst
	}
	// Pack (rank, index) into one int per member, sort without a closure,
	// then keep the index.
	for m := range n {
		if !slices.Contains(dst[:listed], m) {
			dst = append(dst, int(t.tailRank(key, m)))
		}
	}
	tail := dst[listed:]
	slices.Sort(tail)
	for i := range tail {
		tail[i] &= 1<<rankIndexBits - 1
	}
	return dst
}

// tailRank is member m's position key in the rendezvous tail of key's
// preference list: the top 47 bits of its score above the member index, so
// ranks are distinct, non-negative as int, and ties are broken by index (that
// is, by name). Lower ranks come first.
func (t *Table) tailRank(key uint64, m int) uint64 {
	return rendezvous(key, t.nameHashes[m])>>(64-47)<<rankIndexBits | uint64(m)
}

// Owner returns the first member of key's preference list for which ok
// returns true, and whether there is one. A nil ok accepts every member, so
// Owner(key, nil) is Lookup(key).
//
// The balancer passes ok = "serves this module@version, admits new sessions,
// is up". ok is called at most once per member, only for members that could
// be the answer, and not necessarily in list order; it must give the same
// answer for a member throughout the call. Owner takes no lock and does not
// allocate; in the common case (the Maglev owner is ok) it costs one table
// read and one ok call, and each further step one hash and one table read.
// When the seeded fallbacks are exhausted it scores the remaining members in
// one O(n) pass.
func (t *Table) Owner(key uint64, ok func(member int) bool) (member int, found bool) {
	return t.owner(key, ok, nil, 0)
}

// owner is Owner, with members at or above limit in loads also refused when
// loads is not nil (BoundedOwner).
func (t *Table) owner(key uint64, ok func(int) bool, loads []int64, limit int64) (int, bool) {
	n := len(t.names)
	if n == 0 {
		return -1, false
	}
	var seen [FallbackSeeds + 1]int
	m := t.Lookup(key)
	if accept(m, ok, loads, limit) {
		return m, true
	}
	seen[0] = m
	nseen := 1
	for s := uint64(1); s <= FallbackSeeds && nseen < n; s++ {
		m := int(t.entries[t.slot(rehash(key, s))])
		if slices.Contains(seen[:nseen], m) {
			continue
		}
		if accept(m, ok, loads, limit) {
			return m, true
		}
		seen[nseen] = m
		nseen++
	}
	if nseen == n {
		return -1, false
	}
	// The first acceptable member of the tail is the acceptable one with the
	// lowest rank; ok is consulted only for members that would beat the best
	// so far.
	best, bestRank := -1, uint64(math.MaxUint64)
	for m := range n {
		if slices.Contains(seen[:nseen], m) {
			continue
		}
		if r := t.tailRank(key, m); r < bestRank && accept(m, ok, loads, limit) {
			best, bestRank = m, r
		}
	}
	return best, best >= 0
}

// accept reports whether member m may take the key: under the load limit (if
// loads is set) and ok (if set). The load check comes first so ok is not
// called for members that are full.
func accept(m int, ok func(int) bool, loads []int64, limit int64) bool {
	if loads != nil && loads[m] >= limit {
		return false
	}
	return ok == nil || ok(m)
}
