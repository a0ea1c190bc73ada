package affinity

import "testing"

func TestHashesAgree(t *testing.T) {
	id := [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	if HashSession(id) != HashKey(id[:]) {
		t.Error("HashSession(id) != HashKey(id[:])")
	}
	if HashString("sid-1") != HashKey([]byte("sid-1")) {
		t.Error(`HashString("sid-1") != HashKey([]byte("sid-1"))`)
	}
	if rehash(1, 2) == rendezvous(1, 2) {
		t.Error("rehash and rendezvous coincide")
	}
}
