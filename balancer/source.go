package balancer

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// sourceOf is the source a client connection counts against for
// Config.MaxConnsPerSource: the peer address of the connection, which is
// the one place a PROXY-protocol listener (when there is one) would put
// the address its header names. IPv4 addresses count one by one; IPv6
// addresses by their /64, the block one subscriber gets. A connection
// with no IP address (a pipe) has no source: ok is false and it is not
// counted. The address must not change over the connection's life:
// admission and release both read it.
func sourceOf(addr net.Addr) (src netip.Addr, ok bool) {
	var ap netip.AddrPort
	switch a := addr.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	default:
		return netip.Addr{}, false
	}
	ip := ap.Addr().Unmap()
	if !ip.IsValid() {
		return netip.Addr{}, false
	}
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		ip = p.Addr()
	}
	return ip, true
}

// sourceConns counts client connections by source. Admission is per
// connection, not per frame, so a map under a lock is cheap enough.
type sourceConns struct {
	max int // <= 0: no limit, nothing counted

	mu sync.Mutex
	n  map[netip.Addr]int
}

func newSourceConns(max int) *sourceConns {
	return &sourceConns{max: max, n: make(map[netip.Addr]int)}
}

// acquire counts a new connection from addr, or reports false (and
// counts nothing) when its source already has max connections.
func (s *sourceConns) acquire(addr net.Addr) bool {
	src, ok := sourceOf(addr)
	if !ok || s.max <= 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[src] >= s.max {
		return false
	}
	s.n[src]++
	return true
}

// release forgets a connection that acquire admitted; it must be called
// exactly once for each.
func (s *sourceConns) release(addr net.Addr) {
	src, ok := sourceOf(addr)
	if !ok || s.max <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[src]--; s.n[src] <= 0 {
		delete(s.n, src)
	}
}

// refusalLogInterval is the least time between two log lines about
// refused connections of one kind: a flood of refusals costs one line per
// interval, which counts the refusals it did not log.
const refusalLogInterval = 10 * time.Second

// refusalLog rate-limits the log lines of one kind of refusal.
type refusalLog struct {
	next       atomic.Int64 // clock time (UnixNano) from which a line may be logged
	suppressed atomic.Int64 // refusals not logged since the last line
}

// allow reports whether a refusal at now gets a log line, and how many
// refusals since the last line did not.
func (r *refusalLog) allow(now int64) (ok bool, suppressed int64) {
	next := r.next.Load()
	if now < next || !r.next.CompareAndSwap(next, now+int64(refusalLogInterval)) {
		r.suppressed.Add(1)
		return false, 0
	}
	return true, r.suppressed.Swap(0)
}
