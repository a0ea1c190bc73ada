package balancer

import "testing"

// TestCallTable: ids carry their shard and are never 0 nor reused while in
// flight, also when a shard's sequence wraps; take, expire and close hand
// each call back once, and a closed table takes no call.
func TestCallTable(t *testing.T) {
	tb := newCallTable()
	d0, d5 := &downstream{shard: 0}, &downstream{shard: 5}
	ids := map[uint32]bool{}
	for i := range 100 {
		d := d0
		if i%2 == 1 {
			d = d5
		}
		id, ok := tb.add(call{down: d, clientID: uint32(i)}, nil)
		if !ok || id == 0 || ids[id] || id&(callShards-1) != uint32(d.shard) {
			t.Fatalf("call %d: id %d (ok %v, seen %v), want a fresh id in shard %d", i, id, ok, ids[id], d.shard)
		}
		ids[id] = true
	}
	// Wrap shard 0's sequence onto ids in use: they are skipped.
	tb.shards[0].seq = maxCallSeq - 1
	a, _ := tb.add(call{down: d0}, nil)
	b, _ := tb.add(call{down: d0}, nil)
	if a != maxCallSeq<<callShardBits || ids[b] || b == 0 {
		t.Errorf("ids at the wrap: %d then %d (in use: %v)", a, b, ids[b])
	}
	if c, ok := tb.take(a); !ok || c.down != d0 {
		t.Fatal("take lost a call")
	}
	if _, ok := tb.take(a); ok {
		t.Fatal("a call was taken twice")
	}
	if due := tb.expire(1, nil, nil); len(due) != 0 {
		t.Fatalf("%d calls without a deadline expired", len(due))
	}
	late, _ := tb.add(call{down: d5, deadline: 10}, nil)
	if due := tb.expire(5, nil, nil); len(due) != 0 {
		t.Fatal("a call expired before its deadline")
	}
	if due := tb.expire(10, nil, nil); len(due) != 1 || due[0].deadline != 10 {
		t.Fatalf("expired %v, want the call with deadline 10", due)
	}
	if _, ok := tb.take(late); ok {
		t.Fatal("an expired call is still in the table")
	}
	left := tb.close()
	if len(left) != 101 { // 100 + b
		t.Fatalf("close returned %d calls, want 101", len(left))
	}
	if _, ok := tb.add(call{down: d0}, nil); ok {
		t.Fatal("a closed table took a call")
	}
}
