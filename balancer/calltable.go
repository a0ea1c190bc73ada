package balancer

import (
	"sync"
	"sync/atomic"

	"github.com/graftlb/graftlb/protocol"
)

// callShardBits is log2 of the shards of an upstream's call table.
const callShardBits = 4

// callShards is how many independent locks an upstream's calls in flight
// are spread over. Every client connection keeps to one shard
// (downstream.shard, dealt round robin), so that the clients of a gateway do
// not all take one lock to forward a call and to settle it: a shard's lock
// is shared by 1/callShards of them.
const callShards = 1 << callShardBits

// shardSeq deals shards to client connections.
var shardSeq atomic.Uint32

// nextShard returns the shard of a new client connection.
func nextShard() uint8 { return uint8(shardSeq.Add(1) % callShards) }

// callTable holds an upstream's calls in flight by upstream call id. The
// id's low callShardBits bits are its shard; the others count per shard
// and wrap, skipping ids in use.
type callTable struct {
	shards [callShards]callShard
}

type callShard struct {
	mu    sync.Mutex
	calls map[uint32]call
	seq   uint32 // the last sequence number given out
	// deadlines counts the entries with a deadline or an attempt timeout
	// (call.timed), written under mu and read without it, so that sweeps
	// skip a shard without taking its lock.
	deadlines atomic.Int32
	closed    bool
	_         [36]byte // one cache line per shard: no false sharing of the locks
}

func newCallTable() *callTable {
	t := &callTable{}
	for i := range t.shards {
		t.shards[i].calls = make(map[uint32]call, 16)
	}
	return t
}

// maxCallSeq is the largest sequence number of a shard.
const maxCallSeq = 1<<(32-callShardBits) - 1

// add records c in the shard of its client connection under a free id,
// patched into its frame raw (nil: none) under the shard's lock, or
// reports that the table is closed. Under the lock, so that a sweep that
// takes c out (an attempt timeout re-sends its kept frame) sees the frame
// as written.
func (t *callTable) add(c call, raw []byte) (uint32, bool) {
	shard := uint32(c.down.shard)
	sh := &t.shards[shard]
	sh.mu.Lock()
	if sh.closed {
		sh.mu.Unlock()
		return 0, false
	}
	var id uint32
	for {
		if sh.seq++; sh.seq > maxCallSeq {
			sh.seq = 1
		}
		id = sh.seq<<callShardBits | shard // never 0: seq ≥ 1
		if _, busy := sh.calls[id]; !busy {
			break
		}
	}
	if raw != nil {
		protocol.SetCallID(raw, id)
	}
	sh.calls[id] = c
	if c.timed() {
		sh.deadlines.Add(1)
	}
	sh.mu.Unlock()
	return id, true
}

// take removes and returns the call with id.
func (t *callTable) take(id uint32) (call, bool) {
	sh := &t.shards[id&(callShards-1)]
	sh.mu.Lock()
	c, ok := sh.calls[id]
	if ok {
		delete(sh.calls, id)
		if c.timed() {
			sh.deadlines.Add(-1)
		}
	}
	sh.mu.Unlock()
	return c, ok
}

// close closes the table and returns the calls it held: add fails from
// then on.
func (t *callTable) close() map[uint32]call {
	all := map[uint32]call{}
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		sh.closed = true
		for id, c := range sh.calls {
			all[id] = c
		}
		sh.calls = nil
		sh.mu.Unlock()
	}
	return all
}

// expire removes the calls whose deadline is before now and appends them
// to due, with the calls whose attempt timed out (call.tryBy) and that
// abandon lets go. One that abandon keeps stays, with the attempt timeout
// abandon gives it. abandon runs under the shard's lock.
func (t *callTable) expire(now int64, due []call, abandon func(*call, int64) bool) []call {
	for i := range t.shards {
		sh := &t.shards[i]
		if sh.deadlines.Load() == 0 {
			continue
		}
		sh.mu.Lock()
		for id, c := range sh.calls {
			if c.deadline != 0 && c.deadline <= now {
				delete(sh.calls, id)
				sh.deadlines.Add(-1)
				due = append(due, c)
				continue
			}
			if c.tryBy == 0 || c.tryBy > now {
				continue
			}
			if abandon(&c, now) {
				delete(sh.calls, id)
				sh.deadlines.Add(-1)
				due = append(due, c)
				continue
			}
			sh.calls[id] = c // with the attempt timeout abandon set
			if !c.timed() {
				sh.deadlines.Add(-1)
			}
		}
		sh.mu.Unlock()
	}
	return due
}
