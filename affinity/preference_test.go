package affinity

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// firstOK is the reference semantics of Owner: the first ok member of the
// full preference list.
func firstOK(pref []int, ok func(int) bool) (int, bool) {
	for _, m := range pref {
		if ok == nil || ok(m) {
			return m, true
		}
	}
	return -1, false
}

// TestPreferenceIsPermutation checks that every list holds each member once,
// starts with the Maglev owner, and that Owner agrees with walking it.
func TestPreferenceIsPermutation(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	for _, n := range []int{1, 2, 3, 4, 10, 37, 100} {
		tb := mustTable(t, UniformMembers(memberNames(n)...))
		dst := make([]int, 0, n)
		down := make([]bool, n)
		ok := func(m int) bool { return !down[m] }
		for _, k := range sessionKeys(2000, uint64(n)) {
			pref := tb.Preference(k, dst)
			if len(pref) != n {
				t.Fatalf("n=%d: len = %d", n, len(pref))
			}
			if pref[0] != tb.Lookup(k) {
				t.Fatalf("n=%d: position 0 = %d, Lookup = %d", n, pref[0], tb.Lookup(k))
			}
			sorted := slices.Sorted(slices.Values(pref))
			for i, m := range sorted {
				if m != i {
					t.Fatalf("n=%d: %v is not a permutation", n, pref)
				}
			}
			// Owner must equal the first ok entry, whatever is down.
			for i := range down {
				down[i] = r.IntN(4) != 0 // three quarters down: reaches the tail
			}
			want, wantOK := firstOK(pref, ok)
			got, gotOK := tb.Owner(k, ok)
			if got != want || gotOK != wantOK {
				t.Fatalf("n=%d: Owner = %d, %v; first ok in %v = %d, %v", n, got, gotOK, pref, want, wantOK)
			}
		}
	}
}

// TestOwnerCallsOKOnce checks that ok is called at most once per member.
func TestOwnerCallsOKOnce(t *testing.T) {
	tb := mustTable(t, UniformMembers(memberNames(30)...))
	calls := make([]int, 30)
	for _, k := range sessionKeys(500, 5) {
		clear(calls)
		tb.Owner(k, func(m int) bool { calls[m]++; return false })
		for m, c := range calls {
			if c > 1 {
				t.Fatalf("ok called %d times for member %d", c, m)
			}
		}
	}
}

// TestPreferenceTableShare measures how often the table part of the list
// (owner plus seeded fallbacks) is complete; it documents FallbackSeeds.
func TestPreferenceTableShare(t *testing.T) {
	for _, n := range []int{2, 3, 4, 10} {
		tb := mustTable(t, UniformMembers(memberNames(n)...))
		complete, listed := 0, 0
		keys := sessionKeys(20000, 6)
		for _, k := range keys {
			seen := []int{tb.Lookup(k)}
			for s := uint64(1); s <= FallbackSeeds; s++ {
				if m := int(tb.entries[tb.slot(rehash(k, s))]); !slices.Contains(seen, m) {
					seen = append(seen, m)
				}
			}
			listed += len(seen)
			if len(seen) == n {
				complete++
			}
		}
		t.Logf("%d members: table part complete for %.1f%% of keys, %.2f members listed on average",
			n, 100*float64(complete)/float64(len(keys)), float64(listed)/float64(len(keys)))
	}
}

// TestRemovePreferenceDisruption: 10 members, one refuses (down, draining).
// Walking the preference list moves exactly that member's keys, to their
// second choice, and nothing else.
func TestRemovePreferenceDisruption(t *testing.T) {
	const members = 10
	tb := mustTable(t, UniformMembers(memberNames(members)...))
	keys := sessionKeys(100_000, 7)
	for removed := range members {
		ok := func(m int) bool { return m != removed }
		moved, others := 0, 0
		dest := make([]int, members)
		dst := make([]int, 0, members)
		for _, k := range keys {
			before, _ := tb.Owner(k, nil)
			after, _ := tb.Owner(k, ok)
			if before == after {
				continue
			}
			if before != removed {
				others++
				continue
			}
			moved++
			dest[after]++
			if p := tb.Preference(k, dst); after != p[1] {
				t.Fatalf("key moved to %d, second choice is %d", after, p[1])
			}
		}
		if others != 0 {
			t.Errorf("removing %d moved %d keys of other members, want 0", removed, others)
		}
		if removed == 0 {
			t.Logf("member 0 refused: %d keys (%.2f%%) moved, spread %v", moved, 100*float64(moved)/float64(len(keys)), dest)
		}
		// The refused member's keys spread over all others, none taking more
		// than twice its share.
		for m, c := range dest {
			if m != removed && (c == 0 || float64(c) > 2*float64(moved)/(members-1)) {
				t.Errorf("removing %d: member %d took %d of %d moved keys", removed, m, c, moved)
			}
		}
	}
}

// movement compares owners before and after a membership change.
type movement struct {
	toNew   int // keys whose new owner was not a member before
	stayed  int // keys whose owner stayed a member, and did not move
	between int // keys moved between two members that are in both tables
	lost    int // keys whose owner left
}

func measure(before, after []string, inAfter func(string) bool, inBefore func(string) bool) movement {
	var mv movement
	for i := range before {
		switch b, a := before[i], after[i]; {
		case !inAfter(b):
			mv.lost++
		case !inBefore(a):
			mv.toNew++
		case a == b:
			mv.stayed++
		default:
			mv.between++
		}
	}
	return mv
}

// TestRemoveRebuildDisruption: rebuilding the Maglev table without one of 10
// members also moves a few keys between members that stayed (Maglev trades
// them for its balance, as its paper says). Bound and report it.
func TestRemoveRebuildDisruption(t *testing.T) {
	const members = 10
	names := memberNames(members)
	full := mustTable(t, UniformMembers(names...))
	keys := sessionKeys(100_000, 8)
	before := owners(full, keys)
	worst := 0.0
	for removed := range members {
		rest := slices.Delete(slices.Clone(names), removed, removed+1)
		after := owners(mustTable(t, UniformMembers(rest...)), keys)
		mv := measure(before, after,
			func(s string) bool { return s != names[removed] },
			func(string) bool { return true })
		frac := float64(mv.between) / float64(len(keys))
		worst = max(worst, frac)
		t.Logf("remove %s: its %d keys (%.2f%%) moved; %d keys (%.3f%%) moved between members that stayed",
			names[removed], mv.lost, 100*float64(mv.lost)/float64(len(keys)), mv.between, 100*frac)
		if frac > 0.02 {
			t.Errorf("remove %s: %.3f%% of keys moved between stayed members, want ≤ 2%%", names[removed], 100*frac)
		}
	}
	t.Logf("worst: %.3f%% of keys moved between members that stayed", 100*worst)
}

// TestJoinDisruption: 10 → 11 members. About 1/11 of the keys go to the new
// member, and few move between the old ones.
func TestJoinDisruption(t *testing.T) {
	names := memberNames(11)
	keys := sessionKeys(100_000, 9)
	before := owners(mustTable(t, UniformMembers(names[:10]...)), keys)
	after := owners(mustTable(t, UniformMembers(names...)), keys)
	mv := measure(before, after,
		func(string) bool { return true },
		func(s string) bool { return s != names[10] })
	toNew := float64(mv.toNew) / float64(len(keys))
	between := float64(mv.between) / float64(len(keys))
	t.Logf("join: %.3f%% of keys to the new member (ideal %.3f%%), %.3f%% moved between old members",
		100*toNew, 100.0/11, 100*between)
	if toNew < 0.95/11 || toNew > 1.05/11 {
		t.Errorf("%.3f%% of keys moved to the new member, want 1/11 ± 5%%", 100*toNew)
	}
	if between > 0.02 {
		t.Errorf("%.3f%% of keys moved between old members, want ≤ 2%%", 100*between)
	}
}
