package affinity

import (
	"math"
	"slices"
	"testing"
)

func TestLoadCap(t *testing.T) {
	tests := []struct {
		name    string
		total   int64
		k       int
		epsilon float64
		want    int64
	}{
		{"ε=0.25, mean after 10", 99, 10, 0.25, 13}, // ceil(1.25 × 10) = 12.5 → 13
		{"ε=0.25, exact", 399, 10, 0.25, 50},        // 1.25 × 40
		{"ε=0 is the ceiling of the mean", 10, 3, 0, 4},
		{"ε=0, exact mean", 8, 3, 0, 3},
		{"negative ε counts as 0", 10, 3, -1, 4},
		{"NaN ε counts as 0", 10, 3, math.NaN(), 4},
		{"+Inf ε: no cap", 10, 3, math.Inf(1), math.MaxInt64},
		{"no members: no cap", 10, 0, 0.25, math.MaxInt64},
		{"first key", 0, 10, 0.25, 1},
		{"huge ε saturates", 1 << 40, 1, 1e300, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := LoadCap(tt.total, tt.k, tt.epsilon); got != tt.want {
				t.Errorf("LoadCap(%d, %d, %v) = %d, want %d", tt.total, tt.k, tt.epsilon, got, tt.want)
			}
		})
	}
}

// TestBoundedLoad places keys one by one with BoundedOwner and checks after
// every placement that no member exceeds ceil((1+ε) × mean). Skewed keys
// (few distinct sessions hashed many times, as with hot clients) would pile
// on one member without the bound.
func TestBoundedLoad(t *testing.T) {
	tests := []struct {
		name     string
		members  int
		keys     []uint64
		epsilon  float64
		eligible func(int) bool
	}{
		{"uniform keys ε=0.25", 10, sessionKeys(20_000, 10), 0.25, nil},
		{"uniform keys ε=0", 10, sessionKeys(5_000, 11), 0, nil},
		{"one hot key ε=0.25", 10, slices.Repeat([]uint64{42}, 5_000), 0.25, nil},
		{"3 hot keys ε=0.5", 7, slices.Repeat(sessionKeys(3, 12), 2_000), 0.5, nil},
		{"half the members eligible ε=0.25", 10, sessionKeys(10_000, 13), 0.25, func(m int) bool { return m%2 == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := mustTable(t, UniformMembers(memberNames(tt.members)...))
			loads := make([]int64, tt.members)
			var total int64
			k := 0
			for m := range tt.members {
				if tt.eligible == nil || tt.eligible(m) {
					k++
				}
			}
			var plain, moved int
			for _, key := range tt.keys {
				m, ok := tb.BoundedOwner(key, loads, tt.epsilon, tt.eligible)
				if !ok {
					t.Fatal("BoundedOwner found no member")
				}
				if tt.eligible != nil && !tt.eligible(m) {
					t.Fatalf("BoundedOwner chose ineligible member %d", m)
				}
				if o, _ := tb.Owner(key, tt.eligible); o == m {
					plain++
				} else {
					moved++
				}
				loads[m]++
				total++
				limit := int64(math.Ceil((1 + tt.epsilon) * float64(total) / float64(k)))
				if loads[m] > limit {
					t.Fatalf("after %d keys member %d holds %d > ceil((1+ε)·mean) = %d", total, m, loads[m], limit)
				}
			}
			t.Logf("loads %v; %d keys on their plain owner, %d bounced", loads, plain, moved)
		})
	}
}

// TestBoundedOwnerIsPreferenceWalk checks that BoundedOwner is the first
// member of the preference list that is ok and under the cap, and that an
// unlimited epsilon gives Owner.
func TestBoundedOwnerIsPreferenceWalk(t *testing.T) {
	const n = 12
	tb := mustTable(t, UniformMembers(memberNames(n)...))
	loads := []int64{50, 0, 3, 80, 7, 7, 60, 1, 0, 20, 90, 5}
	ok := func(m int) bool { return m != 4 }
	var total int64
	k := 0
	for m, l := range loads {
		if ok(m) {
			total += l
			k++
		}
	}
	limit := LoadCap(total, k, 0.1)
	dst := make([]int, 0, n)
	for _, key := range sessionKeys(3000, 14) {
		want, _ := firstOK(tb.Preference(key, dst), func(m int) bool { return ok(m) && loads[m] < limit })
		if got, _ := tb.BoundedOwner(key, loads, 0.1, ok); got != want {
			t.Fatalf("BoundedOwner = %d, first under cap %d in preference = %d", got, limit, want)
		}
		plain, _ := tb.Owner(key, ok)
		if got, _ := tb.BoundedOwner(key, loads, math.Inf(1), ok); got != plain {
			t.Fatalf("BoundedOwner with ε=+Inf = %d, Owner = %d", got, plain)
		}
	}
}

func TestBoundedOwnerNoneEligible(t *testing.T) {
	tb := mustTable(t, UniformMembers("a", "b"))
	if m, ok := tb.BoundedOwner(1, []int64{0, 0}, 0.25, func(int) bool { return false }); ok || m != -1 {
		t.Errorf("BoundedOwner = %d, %v, want -1, false", m, ok)
	}
}

func TestBoundedOwnerPanicsOnLoadsLength(t *testing.T) {
	tb := mustTable(t, UniformMembers("a", "b"))
	defer func() {
		if recover() == nil {
			t.Error("BoundedOwner with 1 load for 2 members did not panic")
		}
	}()
	tb.BoundedOwner(1, []int64{0}, 0.25, nil)
}
