package affinity

import (
	"math/rand/v2"
	"strconv"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// sessionKeys returns n keys of random 128-bit session ids, the same for a
// given seed on every run.
func sessionKeys(n int, seed uint64) []uint64 {
	r := rand.New(rand.NewPCG(seed, 0x5e55))
	keys := make([]uint64, n)
	for i := range keys {
		var id [16]byte
		for j := 0; j < 16; j += 8 {
			v := r.Uint64()
			for b := range 8 {
				id[j+b] = byte(v >> (8 * b))
			}
		}
		keys[i] = HashSession(id)
	}
	return keys
}

// memberNames returns gw0, gw1, … gw(n-1).
func memberNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = "gw" + strconv.Itoa(i)
	}
	return names
}

// mustTable builds a table or fails the test.
func mustTable(tb testing.TB, members []Member) *Table {
	tb.Helper()
	t, err := NewTable(members)
	if err != nil {
		tb.Fatalf("NewTable: %v", err)
	}
	return t
}

// owners maps each key to the name of its Maglev owner.
func owners(t *Table, keys []uint64) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = t.Name(t.Lookup(k))
	}
	return out
}
