package protocol

import (
	"math/bits"
	"sync"
)

// Buffers larger than a connection keeps for itself (a frame bigger than
// the read buffer, a write batch) come from process-wide pools of size
// classes and go back as soon as the frame is handled, so that an idle
// connection holds only its small buffers however large its past frames
// were, and a steady stream of large frames allocates nothing. sync.Pool
// frees what stays unused for two garbage collections.
//
// The classes are 2^k and 1.5×2^k bytes from 4 KiB to 2 MiB (a frame of
// the default 1 MiB limit and its write batch fit), so a buffer wastes at
// most a third of its size. Larger buffers, the backlog of a peer that
// does not keep up, are allocated and left to the garbage collector: a
// pool would keep them for two collections after their connections died.
const (
	minClassShift = 12 // 4 KiB
	maxClassShift = 21 // 2 MiB
)

type pooledBuf struct {
	b     []byte // len(b) == cap(b) == the class size
	class int    // index into classPools; -1: not pooled
}

var classPools [2*(maxClassShift-minClassShift) + 1]sync.Pool

// classOf returns the smallest class holding n bytes and its size.
func classOf(n int) (class, size int) {
	if n <= 1<<minClassShift {
		return 0, 1 << minClassShift
	}
	k := bits.Len(uint(n - 1)) // 2^(k-1) < n <= 2^k
	if half := 3 << (k - 2); n <= half {
		return 2*(k-1-minClassShift) + 1, half
	}
	return 2 * (k - minClassShift), 1 << k
}

// getBuf returns a buffer of at least n bytes.
func getBuf(n int) *pooledBuf {
	class, size := classOf(n)
	if class >= len(classPools) {
		return &pooledBuf{b: make([]byte, n), class: -1}
	}
	if p, ok := classPools[class].Get().(*pooledBuf); ok {
		return p
	}
	return &pooledBuf{b: make([]byte, size), class: class}
}

// putBuf returns p to its pool; p must not be used afterwards. A nil p is
// ignored.
func putBuf(p *pooledBuf) {
	if p != nil && p.class >= 0 {
		classPools[p.class].Put(p)
	}
}
