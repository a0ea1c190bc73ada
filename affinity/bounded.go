package affinity

import (
	"fmt"
	"math"
)

// BoundedOwner returns the first member of key's preference list that ok
// accepts and whose load is below LoadCap(total, k, epsilon), where total is
// the sum of the loads of the k members ok accepts: consistent hashing with
// bounded loads (Mirrokni, Thorup, Zadimoghaddam, SODA 2018). loads[i] is
// member i's current load (sessions it holds); len(loads) must be Len(), or
// BoundedOwner panics. It returns found = false only when ok accepts no
// member. It takes no lock and does not allocate; ok may be called more than
// once per member and must give the same answer each time.
//
// With epsilon ≥ 0 some accepted member is always below the cap (the cap is
// at least the mean after placement), so after placing the key no accepted
// member holds more than ceil((1+epsilon) × mean). A negative or NaN epsilon
// counts as 0 (perfect balance, most moves); +Inf disables the cap, giving
// Owner(key, ok). 0.25 is the usual choice (liblb, brpc).
//
// The trade-off: the result depends on loads, which each proxy counts for
// itself, so two proxies may place the same new key on different members, and
// a key's owner is no longer a function of the member set. graftlb's binding
// table and NOT_OWNER walk (DESIGN.md §4) still find the holder of a resumed
// session, but the walk may be longer: a key skips past full members, and
// with small epsilon a membership change moves O(1/ε²) times more keys than
// plain consistent hashing (for ε ≤ 1, per the paper). Use it where balance matters
// more than agreement between proxies.
func (t *Table) BoundedOwner(key uint64, loads []int64, epsilon float64, ok func(member int) bool) (member int, found bool) {
	n := len(t.names)
	if len(loads) != n {
		panic(fmt.Sprintf("affinity: BoundedOwner: len(loads) = %d, want Len() = %d", len(loads), n))
	}
	var total int64
	k := 0
	for m := range n {
		if ok == nil || ok(m) {
			total += loads[m]
			k++
		}
	}
	if k == 0 {
		return -1, false
	}
	return t.owner(key, ok, loads, LoadCap(total, k, epsilon))
}

// LoadCap returns the bounded-load capacity for placing one more key on k
// members that hold total keys: ceil((1+epsilon) × (total+1) / k), and never
// less than ceil((total+1)/k), so at least one member is below it. A member
// may take the key if its load is below the cap. A negative or NaN epsilon
// counts as 0; k ≤ 0 or +Inf epsilon gives math.MaxInt64 (no cap).
func LoadCap(total int64, k int, epsilon float64) int64 {
	if k <= 0 || math.IsInf(epsilon, 1) {
		return math.MaxInt64
	}
	if !(epsilon > 0) { // also NaN
		epsilon = 0
	}
	after := total + 1
	floor := after / int64(k)
	if after%int64(k) != 0 {
		floor++
	}
	c := math.Ceil((1 + epsilon) * float64(after) / float64(k))
	if c >= math.MaxInt64 {
		return math.MaxInt64
	}
	return max(int64(c), floor)
}
