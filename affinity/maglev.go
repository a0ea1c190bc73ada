package affinity

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// MinTableSize is the smallest Maglev table NewTable builds (a prime, 2^16+1).
//
// The table size M is the smallest prime ≥ max(100 × members, MinTableSize).
// M must be prime so that every skip in [1, M-1] walks a full permutation of
// the slots. The 100× floor is the paper's rule: every member then owns at
// least 100 slots, so the one-slot difference between the shares of
// equal-weight members is at most 1%. The fixed floor of
// 65537 goes further for the small pools graftlb expects (up to 655 members):
//   - balance: shares of equal-weight members differ by at most one slot, so
//     with 10 members the table itself is within 0.02% of even;
//   - disruption: the number of keys that move between members that stayed
//     shrinks as M grows (Eisenbud et al., §5), and at 65537 it is well
//     under 1% of keys for 10 members (see TestRemoveRebuildDisruption);
//   - cost: entries are uint16, so the table is 128 KiB and stays in L2 on the
//     data path; building it takes about a millisecond (BenchmarkNewTable)
//     and happens only when membership changes.
//
// It is also Envoy's default Maglev table size, so graftlb's balance and
// disruption can be compared with Envoy's directly.
const MinTableSize = 65537

// MaxMembers is the largest number of members (with non-zero weight) a Table
// holds. Entries are uint16 and one value marks free slots while building.
const MaxMembers = 1<<16 - 1

// emptySlot marks a slot not yet claimed while the table is populated.
const emptySlot = 1<<16 - 1

// Offset and skip of a member's Maglev permutation come from two independent
// hashes of its name (the paper's h1 and h2).
const (
	offsetSeed = 0
	skipSeed   = 0x6d61676c6576 // "maglev"
)

// Member is one backend as the affinity layer sees it: a stable name and a
// weight.
type Member struct {
	// Name identifies the member; tables sort members by name, so it must be
	// the same on every proxy (the gateway's name, not a local index). It must
	// be non-empty and unique.
	Name string
	// Weight is how many turns the member takes per Maglev round, so its share
	// of keys is Weight / (sum of weights). Zero means "not in the table": the
	// member owns no key and is not in any preference list. Negative is an
	// error. Weights are relative; keep ratios far below the table size, or a
	// light member may get no slot at all.
	Weight int
}

// UniformMembers returns one Member of weight 1 per name, for pools without
// weights.
func UniformMembers(names ...string) []Member {
	ms := make([]Member, len(names))
	for i, n := range names {
		ms[i] = Member{Name: n, Weight: 1}
	}
	return ms
}

// Table is an immutable Maglev lookup table over a set of members.
//
// Members are indexed 0…Len()-1 in byte-wise order of their names, so an
// index means the same member on every proxy that built its table from the
// same member set. A Table is safe for concurrent use; nothing in it changes
// after NewTable. The balancer builds a new Table on every membership or
// weight change and publishes it with its picker snapshot.
type Table struct {
	// All fields are immutable after NewTable.
	names       []string
	weights     []int
	nameHashes  []uint64 // XXH64 of each name, the member's rendezvous identity
	slots       []int    // number of entries each member owns
	entries     []uint16 // slot → member index
	size        uint64   // len(entries), prime
	fingerprint uint64
}

// NewTable builds the Maglev table of members. Members with weight 0 are left
// out; the input order does not matter and the slice is not modified.
// It returns an error, prefixed "affinity:", for an empty or duplicate name, a
// negative weight, or more than MaxMembers members. A member set with no
// weighted member gives an empty table, whose lookups find no owner.
func NewTable(members []Member) (*Table, error) {
	ms := make([]Member, 0, len(members))
	for i, m := range members {
		switch {
		case m.Name == "":
			return nil, fmt.Errorf("affinity: member %d: empty name", i)
		case m.Weight < 0:
			return nil, fmt.Errorf("affinity: member %q: negative weight %d", m.Name, m.Weight)
		}
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	for i := 1; i < len(ms); i++ {
		if ms[i].Name == ms[i-1].Name {
			return nil, fmt.Errorf("affinity: member %q: duplicate name", ms[i].Name)
		}
	}
	ms = slices.DeleteFunc(ms, func(m Member) bool { return m.Weight == 0 })
	if len(ms) > MaxMembers {
		return nil, fmt.Errorf("affinity: %d members with non-zero weight, at most %d supported", len(ms), MaxMembers)
	}

	n := len(ms)
	t := &Table{
		names:      make([]string, n),
		weights:    make([]int, n),
		nameHashes: make([]uint64, n),
		slots:      make([]int, n),
	}
	if n == 0 {
		t.fingerprint = t.computeFingerprint()
		return t, nil
	}
	t.size = tableSize(n)
	offsets := make([]uint64, n)
	skips := make([]uint64, n)
	var d xxhash.Digest
	for i, m := range ms {
		t.names[i], t.weights[i] = m.Name, m.Weight
		t.nameHashes[i] = xxhash.Sum64String(m.Name)
		d.ResetWithSeed(offsetSeed)
		d.WriteString(m.Name)
		offsets[i] = d.Sum64() % t.size
		d.ResetWithSeed(skipSeed)
		d.WriteString(m.Name)
		skips[i] = d.Sum64()%(t.size-1) + 1
	}
	t.entries = populate(t.size, offsets, skips, t.weights)
	for _, e := range t.entries {
		t.slots[e]++
	}
	t.fingerprint = t.computeFingerprint()
	return t, nil
}

// populate fills a Maglev table of the given prime size (Eisenbud et al.,
// §3.4, Pseudocode 1), weighted: in each round, member i takes weights[i]
// turns, and each turn claims the next free slot of its permutation
// offset[i], offset[i]+skip[i], offset[i]+2·skip[i], … (mod size).
// Permutations are walked in place instead of being stored, so memory is
// O(size + members). Expected work is O(size · log size).
func populate(size uint64, offsets, skips []uint64, weights []int) []uint16 {
	entries := make([]uint16, size)
	for i := range entries {
		entries[i] = emptySlot
	}
	next := slices.Clone(offsets) // next[i]: next candidate slot of member i
	var filled uint64
	for {
		for i, w := range weights {
			for range w {
				c, skip := next[i], skips[i]
				for entries[c] != emptySlot {
					if c += skip; c >= size {
						c -= size
					}
				}
				entries[c] = uint16(i)
				if c += skip; c >= size {
					c -= size
				}
				next[i] = c
				if filled++; filled == size {
					return entries
				}
			}
		}
	}
}

// tableSize is the smallest prime ≥ max(100·n, MinTableSize).
func tableSize(n int) uint64 {
	return nextPrime(max(100*uint64(n), MinTableSize))
}

// nextPrime returns the smallest prime ≥ x, by trial division (x is at most
// a few million, so this costs microseconds).
func nextPrime(x uint64) uint64 {
	if x <= 2 {
		return 2
	}
	if x%2 == 0 {
		x++
	}
	for ; ; x += 2 {
		if isOddPrime(x) {
			return x
		}
	}
}

func isOddPrime(x uint64) bool {
	if x < 3 {
		return false
	}
	for d := uint64(3); d*d <= x; d += 2 {
		if x%d == 0 {
			return false
		}
	}
	return true
}

// computeFingerprint hashes names, weights and entries.
func (t *Table) computeFingerprint() uint64 {
	var d xxhash.Digest
	d.Reset()
	var buf [512]byte
	b := buf[:0]
	for i, name := range t.names {
		b = binary.LittleEndian.AppendUint64(b[:0], uint64(len(name)))
		d.Write(b)
		d.WriteString(name)
		d.Write(binary.LittleEndian.AppendUint64(b[:0], uint64(t.weights[i])))
	}
	b = b[:0]
	for _, e := range t.entries {
		b = binary.LittleEndian.AppendUint16(b, e)
		if len(b) == cap(b) {
			d.Write(b)
			b = b[:0]
		}
	}
	d.Write(b)
	return d.Sum64()
}

// slot maps a 64-bit hash onto [0, size) by multiply-shift (Lemire's
// "fastrange"), which is uniform for uniform hashes and avoids a division.
func (t *Table) slot(h uint64) uint64 {
	hi, _ := bits.Mul64(h, t.size)
	return hi
}

// Lookup returns the Maglev owner of key (a hash from HashSession or
// HashKey): the member index in the key's slot, or -1 if the table is empty.
// It is a pure function of the table and the key: it takes no lock and does
// not allocate. It ignores health; Owner walks on to fallbacks.
func (t *Table) Lookup(key uint64) int {
	if t.size == 0 {
		return -1
	}
	return int(t.entries[t.slot(key)])
}

// Len returns the number of members in the table (those with non-zero
// weight).
func (t *Table) Len() int { return len(t.names) }

// Name returns the name of member i, 0 ≤ i < Len().
func (t *Table) Name(i int) string { return t.names[i] }

// Weight returns the weight of member i, 0 ≤ i < Len().
func (t *Table) Weight(i int) int { return t.weights[i] }

// Index returns the index of the member called name, and whether it is in the
// table. It does not allocate (binary search over the sorted names).
func (t *Table) Index(name string) (int, bool) {
	return slices.BinarySearch(t.names, name)
}

// Members returns a copy of the table's members in index order.
func (t *Table) Members() []Member {
	ms := make([]Member, len(t.names))
	for i := range ms {
		ms[i] = Member{Name: t.names[i], Weight: t.weights[i]}
	}
	return ms
}

// Size returns the number of slots M (0 for an empty table).
func (t *Table) Size() int { return int(t.size) }

// Slots returns how many of the Size() slots member i owns; its share of keys
// is Slots(i)/Size().
func (t *Table) Slots(i int) int { return t.slots[i] }

// Fingerprint returns a hash of the table's members, weights and slots.
// Proxies whose tables have the same fingerprint route every key the same way
// (barring a hash collision), so the admin API and logs can show it to
// confirm that proxies agree.
func (t *Table) Fingerprint() uint64 { return t.fingerprint }
