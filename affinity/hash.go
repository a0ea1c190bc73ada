package affinity

import (
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
)

// HashSession returns the affinity key of a 128-bit session id: the XXH64 hash
// (seed 0) of its 16 bytes. Every proxy computes the same key for the same id,
// which is what lets independent proxies agree on the owner. It does not
// allocate.
func HashSession(id [16]byte) uint64 {
	return xxhash.Sum64(id[:])
}

// HashKey returns the affinity key of an arbitrary byte string, such as the
// value Extract returns in pass-through mode: the XXH64 hash (seed 0) of b.
// It does not allocate and does not keep b.
func HashKey(b []byte) uint64 {
	return xxhash.Sum64(b)
}

// HashString is HashKey for a string, without converting it to a byte slice.
func HashString(s string) uint64 {
	return xxhash.Sum64String(s)
}

// hashPair hashes two 64-bit words, little-endian, as one 16-byte XXH64 input.
// The buffer stays on the stack: xxhash.Sum64 does not let its argument escape.
func hashPair(a, b uint64) uint64 {
	var buf [16]byte
	binary.LittleEndian.PutUint64(buf[:8], a)
	binary.LittleEndian.PutUint64(buf[8:], b)
	return xxhash.Sum64(buf[:])
}

// rehash is the key's hash under fallback seed s (s ≥ 1) of the preference
// list: H(key ‖ s).
func rehash(key, seed uint64) uint64 {
	return hashPair(key, seed)
}

// rendezvous is the rendezvous (HRW) score of a member for a key:
// H(memberHash ‖ key). The operand order differs from rehash so that the two
// families of hashes never coincide.
func rendezvous(key, memberHash uint64) uint64 {
	return hashPair(memberHash, key)
}
