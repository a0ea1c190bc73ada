package affinity

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestPopulatePaperExample checks populate against the worked example of
// Eisenbud et al. §3.4 (also in the package doc): M = 7,
// B0 (offset 3, skip 4), B1 (0, 2), B2 (3, 1).
func TestPopulatePaperExample(t *testing.T) {
	tests := []struct {
		name    string
		offsets []uint64
		skips   []uint64
		weights []int
		want    []uint16
	}{
		{"three backends", []uint64{3, 0, 3}, []uint64{4, 2, 1}, []int{1, 1, 1}, []uint16{1, 0, 1, 0, 2, 2, 0}},
		{"B1 removed", []uint64{3, 3}, []uint64{4, 1}, []int{1, 1}, []uint16{0, 0, 0, 0, 1, 1, 1}},
		{"B0 weight 2", []uint64{3, 0, 3}, []uint64{4, 2, 1}, []int{2, 1, 1}, []uint16{0, 0, 1, 0, 2, 0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := populate(7, tt.offsets, tt.skips, tt.weights)
			if !slices.Equal(got, tt.want) {
				t.Errorf("populate = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTableSize(t *testing.T) {
	tests := []struct {
		members int
		want    uint64
	}{
		{1, 65537}, {10, 65537}, {655, 65537}, {656, 65609}, {1000, 100003}, {10000, 1000003},
	}
	for _, tt := range tests {
		if got := tableSize(tt.members); got != tt.want {
			t.Errorf("tableSize(%d) = %d, want %d", tt.members, got, tt.want)
		}
		if !isOddPrime(tt.want) {
			t.Errorf("%d is not prime", tt.want)
		}
	}
	for _, x := range []uint64{0, 1, 2, 3, 4, 9, 25, 65536, 65538} {
		p := nextPrime(x)
		if p < x || (p > 2 && !isOddPrime(p)) {
			t.Errorf("nextPrime(%d) = %d", x, p)
		}
	}
}

func TestNewTableErrors(t *testing.T) {
	tests := []struct {
		name    string
		members []Member
		wantErr string
	}{
		{"empty name", []Member{{"a", 1}, {"", 1}}, `affinity: member 1: empty name`},
		{"negative weight", []Member{{"a", -1}}, `affinity: member "a": negative weight -1`},
		{"duplicate", []Member{{"b", 1}, {"a", 1}, {"b", 2}}, `affinity: member "b": duplicate name`},
		{"duplicate with weight 0", []Member{{"a", 0}, {"a", 1}}, `affinity: member "a": duplicate name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewTable(tt.members)
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("NewTable error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestEmptyTable(t *testing.T) {
	for _, members := range [][]Member{nil, {{"a", 0}, {"b", 0}}} {
		tb := mustTable(t, members)
		if tb.Len() != 0 || tb.Size() != 0 {
			t.Errorf("Len, Size = %d, %d, want 0, 0", tb.Len(), tb.Size())
		}
		if m := tb.Lookup(42); m != -1 {
			t.Errorf("Lookup = %d, want -1", m)
		}
		if m, ok := tb.Owner(42, nil); ok || m != -1 {
			t.Errorf("Owner = %d, %v, want -1, false", m, ok)
		}
		if p := tb.Preference(42, nil); len(p) != 0 {
			t.Errorf("Preference = %v, want empty", p)
		}
		if m, ok := tb.BoundedOwner(42, nil, 0.25, nil); ok || m != -1 {
			t.Errorf("BoundedOwner = %d, %v, want -1, false", m, ok)
		}
	}
}

func TestZeroWeightLeftOut(t *testing.T) {
	tb := mustTable(t, []Member{{"c", 1}, {"b", 0}, {"a", 2}})
	if got := tb.Members(); !slices.Equal(got, []Member{{"a", 2}, {"c", 1}}) {
		t.Fatalf("Members = %v", got)
	}
	if _, ok := tb.Index("b"); ok {
		t.Error(`Index("b") found a weight-0 member`)
	}
	if i, ok := tb.Index("c"); !ok || i != 1 || tb.Name(i) != "c" || tb.Weight(i) != 1 {
		t.Errorf(`Index("c") = %d, %v`, i, ok)
	}
	if tb.Slots(0)+tb.Slots(1) != tb.Size() {
		t.Errorf("slots %d + %d != size %d", tb.Slots(0), tb.Slots(1), tb.Size())
	}
}

// TestBalance places 100k random session ids on 10 members; the busiest must
// hold at most 5% more than the mean. Maglev itself gives each member the same
// number of slots ±1, so what remains is sampling noise.
func TestBalance(t *testing.T) {
	const members, n = 10, 100_000
	tb := mustTable(t, UniformMembers(memberNames(members)...))
	for i := range members {
		if d := tb.Slots(i) - tb.Size()/members; d < 0 || d > 1 {
			t.Errorf("member %d owns %d slots, want %d or one more", i, tb.Slots(i), tb.Size()/members)
		}
	}
	load := make([]int, members)
	for _, k := range sessionKeys(n, 1) {
		load[tb.Lookup(k)]++
	}
	mean := float64(n) / members
	ratio := float64(slices.Max(load)) / mean
	t.Logf("loads %v: max/mean = %.4f, min/mean = %.4f", load, ratio, float64(slices.Min(load))/mean)
	if ratio > 1.05 {
		t.Errorf("max/mean = %.4f, want ≤ 1.05", ratio)
	}
}

// TestWeightedBalance checks that shares follow weights: weight 2 gets about
// twice the keys of weight 1, weight 3 three times.
func TestWeightedBalance(t *testing.T) {
	const n = 100_000
	tests := []struct {
		name    string
		weights []int
	}{
		{"one heavy of 10", []int{2, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{"mixed", []int{1, 2, 3, 1, 2, 3}},
		{"two", []int{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			names := memberNames(len(tt.weights))
			ms := make([]Member, len(names))
			total := 0
			for i, w := range tt.weights {
				ms[i] = Member{names[i], w}
				total += w
			}
			tb := mustTable(t, ms)
			load := make(map[string]int)
			for _, k := range sessionKeys(n, 2) {
				load[tb.Name(tb.Lookup(k))]++
			}
			for i, w := range tt.weights {
				idx, _ := tb.Index(names[i])
				slotShare := float64(tb.Slots(idx)) / float64(tb.Size())
				if want := float64(w) / float64(total); math.Abs(slotShare-want) > 0.001 {
					t.Errorf("%s: slot share %.4f, want %.4f", names[i], slotShare, want)
				}
				perWeight := float64(load[names[i]]) / float64(w)
				ideal := float64(n) / float64(total)
				if r := perWeight / ideal; r < 0.95 || r > 1.05 {
					t.Errorf("%s (weight %d): %d keys, %.3f of its weighted share, want 0.95…1.05", names[i], w, load[names[i]], r)
				}
			}
			// Keys per member of weight 2 against keys per member of weight 1.
			var one, two, nOne, nTwo float64
			for i, w := range tt.weights {
				switch w {
				case 1:
					one, nOne = one+float64(load[names[i]]), nOne+1
				case 2:
					two, nTwo = two+float64(load[names[i]]), nTwo+1
				}
			}
			ratio := (two / nTwo) / (one / nOne)
			t.Logf("loads %v; weight 2 / weight 1 = %.3f", load, ratio)
			if ratio < 1.9 || ratio > 2.1 {
				t.Errorf("weight 2 gets %.3f× the keys of weight 1, want 1.9…2.1", ratio)
			}
		})
	}
}

// TestDeterminism builds tables from the same members in many orders: all
// must be identical.
func TestDeterminism(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for _, n := range []int{1, 2, 3, 10, 100} {
		ms := UniformMembers(memberNames(n)...)
		for i := range ms {
			ms[i].Weight = 1 + i%3
		}
		ref := mustTable(t, ms)
		for range 5 {
			r.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
			in := slices.Clone(ms)
			got := mustTable(t, ms)
			if !slices.Equal(ms, in) {
				t.Fatal("NewTable modified its input")
			}
			if !slices.Equal(got.entries, ref.entries) || !slices.Equal(got.names, ref.names) ||
				!slices.Equal(got.weights, ref.weights) || got.Fingerprint() != ref.Fingerprint() {
				t.Fatalf("n=%d: table differs with member order", n)
			}
		}
	}
}

// TestFingerprintChanges checks that the fingerprint tells different tables
// apart.
func TestFingerprintChanges(t *testing.T) {
	base := mustTable(t, UniformMembers("a", "b", "c"))
	for _, ms := range [][]Member{
		UniformMembers("a", "b"),
		UniformMembers("a", "b", "d"),
		{{"a", 1}, {"b", 1}, {"c", 2}},
	} {
		if mustTable(t, ms).Fingerprint() == base.Fingerprint() {
			t.Errorf("%v has the fingerprint of a, b, c", ms)
		}
	}
}

// TestGolden pins the mapping for a fixed member set. Proxies of different
// versions run side by side during a rolling upgrade; if this test fails, the
// change makes them disagree on owners, which must be a deliberate, announced
// decision.
func TestGolden(t *testing.T) {
	var id [16]byte
	copy(id[:], "graftlb-session!")
	key := HashSession(id)
	if key != 0xec2b615af3a26edb {
		t.Errorf("HashSession = %#x, want 0xec2b615af3a26edb", key)
	}
	tests := []struct {
		members         []string
		wantFingerprint uint64
		wantPreference  string
	}{
		{[]string{"gw-a", "gw-b", "gw-c", "gw-d"}, 0x83e2bc83d57fc5b2, "gw-a gw-b gw-d gw-c"},
		{memberNames(20), 0xd513a83ded9810c2, // long enough to reach the rendezvous tail
			"gw19 gw1 gw11 gw2 gw5 gw16 gw18 gw12 gw15 gw13 gw17 gw10 gw6 gw3 gw8 gw4 gw7 gw0 gw14 gw9"},
	}
	for _, tt := range tests {
		tb := mustTable(t, UniformMembers(tt.members...))
		var got []string
		for _, m := range tb.Preference(key, nil) {
			got = append(got, tb.Name(m))
		}
		if tb.Fingerprint() != tt.wantFingerprint || strings.Join(got, " ") != tt.wantPreference {
			t.Errorf("%d members: fingerprint %#x, preference %q; want %#x, %q",
				len(tt.members), tb.Fingerprint(), strings.Join(got, " "), tt.wantFingerprint, tt.wantPreference)
		}
	}
}
