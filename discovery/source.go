package discovery

import "sync"

// Source produces membership snapshots. Gossip, Static and DNS implement it
// and describe the same pool with equal members (see the package doc).
//
// Threading rule: a Source has one consumer of Updates, normally the
// goroutine that owns the balancer's control plane. Snapshots arrive on
// that channel in version order, one at a time, so the consumer never sees
// two at once. The channel holds at most one snapshot: when the consumer
// is slow, a newer snapshot replaces the unread one (latest wins; the
// versions received may skip). Publishing never blocks, so a slow consumer
// cannot stall gossip. Other readers, such as the admin API, call Snapshot.
type Source interface {
	// Updates returns the channel of snapshots; the same channel on every
	// call. It is closed by Close.
	Updates() <-chan Snapshot
	// Snapshot returns the newest snapshot without blocking; version 0 if
	// none was published yet.
	Snapshot() Snapshot
	// Close stops the source and waits for its goroutines; it closes the
	// Updates channel. It is safe to call more than once.
	Close() error
}

// feed is the publishing half of a Source: one buffered slot, latest wins.
type feed struct {
	ch chan Snapshot // capacity 1; only publish and close touch it, under mu

	mu     sync.Mutex
	cur    Snapshot
	closed bool
}

func newFeed() *feed { return &feed{ch: make(chan Snapshot, 1)} }

// publish makes members the next snapshot unless they equal the current
// one (and a snapshot was already published). It never blocks and reports
// whether it published. members is not kept.
func (f *feed) publish(members []Member) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	next := NewSnapshot(f.cur.version+1, members)
	if f.cur.version > 0 && next.SameMembers(f.cur) {
		return false
	}
	f.cur = next
	select {
	case <-f.ch: // drop the unread older snapshot
	default:
	}
	f.ch <- next // cannot block: the slot is empty and only we send
	return true
}

func (f *feed) snapshot() Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur
}

func (f *feed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.ch)
	}
}
